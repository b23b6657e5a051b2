"""The benchmark harness works end to end (its numbers mean nothing on moto: see
docs/benchmarks.md for real runs against LocalStack)."""

from __future__ import annotations

from login_etl.bench.archive import archive_bench
from login_etl.bench.run import BenchOptions, run_bench
from login_etl.demo.services import MotoSqs


def test_the_benchmark_runs_every_stage_and_checks_its_drain(moto: MotoSqs, admin_url: str) -> None:
    report = run_bench(
        BenchOptions(
            endpoint_url=moto.endpoint,
            database_url=admin_url,
            messages=300,
            pollers=2,
            batch_size=100,
        )
    )
    assert report.transform_rate > 0
    assert set(report.load_rates) == {100, 5000}
    assert report.raw_rate > 0
    assert report.drain_rate > 0
    assert "291 loaded, 9 rejected" in report.drain_summary
    assert report.worker_peak_rss_mb > 10
    text = "\n".join(report.lines())
    assert "x raw" in text
    assert "s per 1,000 messages" in text


def test_stages_only_needs_no_queue(admin_url: str) -> None:
    report = run_bench(
        BenchOptions(
            endpoint_url="http://unused.invalid",
            database_url=admin_url,
            messages=200,
            stages_only=True,
        )
    )
    assert report.transform_rate > 0
    assert all(rate > 0 for rate in report.load_rates.values())
    # Every loaded row has two values to re-encrypt; the 3% rejected have a body each.
    assert report.rekey_rate > 0
    assert report.rekeyed_values == 194 * 2 + 6
    assert not any("raw" in line for line in report.lines())


def test_the_archive_benchmark_archives_and_restores_every_row(admin_url: str) -> None:
    lines = archive_bench(admin_url, 3000)
    assert lines[0].startswith("archive of 3,000 rows (10 days): ")
    assert "raw COPY TO STDOUT binary" in lines[0]
    assert lines[1].startswith("restore of the same: ")
    assert "MB on disk for user_logins" in lines[2]


def test_the_ledger_benchmark_loads_each_round_into_both_designs(admin_url: str) -> None:
    report = run_bench(
        BenchOptions(
            endpoint_url="http://unused.invalid",
            database_url=admin_url,
            messages=200,
            stages_only=True,
            ledger_rows=2000,
        )
    )
    designs = {(r.design, r.ids) for r in report.ledger_rates}
    assert designs == {
        ("unpartitioned (v4)", 0),
        ("unpartitioned (v4)", 2000),
        ("partitioned hourly, keyed by time (v7)", 0),
        ("partitioned hourly, keyed by time (v7)", 2000),
    }
    assert all(len(r.rounds) == 3 and min(r.rounds) > 0 for r in report.ledger_rates)
    ledger_lines = [line for line in report.lines() if "ledger holding" in line]
    assert len(ledger_lines) == 4
    assert all("x empty (median of " in line for line in ledger_lines)
