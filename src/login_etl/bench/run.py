"""The benchmark: raw endpoint capacity, the real `run` path end to end, and the stages alone."""

from __future__ import annotations

import contextlib
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from login_etl.adapters.postgres import connect, migrate
from login_etl.adapters.postgres.connection import translated
from login_etl.adapters.sqs_protocol import SqsProtocol
from login_etl.bench import cpu, ledger, queues, stages
from login_etl.config import dburl, default_of, endpoint_problem
from login_etl.core.model import Message
from login_etl.core.transform import Transformer
from login_etl.demo.data import generate_bodies
from login_etl.errors import ConfigError
from login_etl.keys import create_key_file, load_key_file, read_key_file

# LocalStack's SQS, the emulator the benchmark is meant for (moto's numbers mean little).
ENDPOINT = "http://localhost:4566"


@dataclass(frozen=True)
class BenchOptions:
    endpoint_url: str
    database_url: str | None  # None: start an embedded PostgreSQL
    sqs_protocol: SqsProtocol = "auto"
    messages: int = 20_000
    malformed_pct: float = 3.0
    pollers: int = default_of("pollers")
    batch_size: int = default_of("batch_size")
    processes: int = 1
    profile: bool = False
    stages_only: bool = False
    # Ids in the ledger for the ledger benchmark (0: skip it; 50 M takes minutes to synthesise).
    ledger_rows: int = 0
    # Raw and run drains alternate this many times; the report gives medians, since an emulator
    # on a small machine varies by ±15% from one drain to the next.
    rounds: int = 3

    def __post_init__(self) -> None:
        """Check the URLs as `run` checks its settings, before anything connects: libpq's and
        botocore's own errors would come later, as tracebacks, and libpq's may quote part of a
        password."""
        if self.database_url is not None and (problem := dburl.problem(self.database_url)):
            raise ConfigError(f"--database-url: {problem}")
        if problem := endpoint_problem(self.endpoint_url, "http(s) URL such as " + ENDPOINT):
            raise ConfigError(f"--endpoint-url: {problem}")


@dataclass
class BenchReport:
    """Every number the benchmark measured; `lines()` renders it for docs/benchmarks.md."""

    options: BenchOptions
    machine: str = ""
    publish_s: float = 0.0
    raw_rates: list[float] = field(default_factory=list)
    drain_rates: list[float] = field(default_factory=list)  # wall: process start to exit
    steady_rates: list[float] = field(default_factory=list)  # first message taken to empty
    drain_s: float = 0.0
    worker_cpu_s: float = 0.0
    worker_peak_rss_mb: float = 0.0
    drain_summary: str = ""
    cpu_split: dict[str, float] = field(default_factory=dict)
    transform_rate: float = 0.0
    load_rates: dict[int, float] = field(default_factory=dict)
    rekey_rate: float = 0.0
    rekeyed_values: int = 0
    ledger_rates: list[ledger.LedgerRate] = field(default_factory=list)
    profile_top: list[str] = field(default_factory=list)

    @property
    def raw_rate(self) -> float:
        return statistics.median(self.raw_rates) if self.raw_rates else 0.0

    @property
    def drain_rate(self) -> float:
        return statistics.median(self.drain_rates) if self.drain_rates else 0.0

    @property
    def steady_rate(self) -> float:
        return statistics.median(self.steady_rates) if self.steady_rates else 0.0

    @staticmethod
    def _spread(rates: list[float]) -> str:
        return " / ".join(f"{r:,.0f}" for r in rates)

    def lines(self) -> list[str]:
        o = self.options
        out = [
            f"machine: {self.machine}",
            f"messages: {o.messages:,} ({o.malformed_pct:g}% malformed); pollers {o.pollers}; "
            f"batch {o.batch_size}; processes {o.processes}",
            f"transform (parse, validate, mask), one core: {self.transform_rate:,.0f} msgs/s",
        ]
        out += [
            f"load (COPY + ledger + insert), batches of {b:,}: {r:,.0f} rows/s"
            for b, r in self.load_rates.items()
        ]
        out.append(
            f"rekey after a rotation: {self.rekey_rate:,.0f} rows/s "
            f"({self.rekeyed_values:,} values and bodies re-encrypted)"
        )
        empty = {r.design: r.rate for r in self.ledger_rates if r.ids == 0}
        out += [
            f"load, batches of {o.batch_size:,}, {r.design} ledger holding {r.ids:,} ids: "
            f"{r.rate:,.0f} rows/s = {r.rate / empty[r.design]:.2f} x empty (median of "
            + " / ".join(f"{x:,.0f}" for x in r.rounds)
            + (f"; synthesised in {r.seconds_to_fill:.0f} s)" if r.ids else ")")
            for r in self.ledger_rates
        ]
        if o.stages_only:
            return out
        per_1000 = self.worker_cpu_s / o.messages * 1000
        out += [
            f"publish: {o.messages / self.publish_s:,.0f} msgs/s",
            f"raw receive+delete, {o.pollers * o.processes} threads: {self.raw_rate:,.0f} msgs/s "
            f"(median of {self._spread(self.raw_rates)})",
            f"login-etl run --until-empty, first message taken to queue empty: "
            f"{self.steady_rate:,.0f} msgs/s (median of {self._spread(self.steady_rates)}) "
            f"= {self.steady_rate / self.raw_rate:.2f} x raw",
            f"  the same, process start to exit: {self.drain_rate:,.0f} msgs/s "
            f"(median of {self._spread(self.drain_rates)}) "
            f"= {self.drain_rate / self.raw_rate:.2f} x raw",
            f"  last drain: {self.drain_summary}",
            f"  worker CPU: {per_1000:.3f} s per 1,000 messages; "
            f"peak RSS {self.worker_peak_rss_mb:.0f} MB",
            "  CPU seconds during the last drain: "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(self.cpu_split.items())),
        ]
        if self.profile_top:
            out += ["  worker profile (batcher thread, by own time):", *self.profile_top]
        return out


def _machine() -> str:
    cpu_name = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_name = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu_name}), Python {platform.python_version()}"


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@contextlib.contextmanager
def _scratch_database(admin_url: str | None) -> Iterator[str]:
    """A new database for the benchmark on the given server (or an embedded one), dropped after."""
    with contextlib.ExitStack() as stack:
        if admin_url is None:
            from login_etl.demo.services import EmbeddedPostgres  # noqa: PLC0415 - demo extra

            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="login-etl-bench-")))
            admin_url = stack.enter_context(EmbeddedPostgres(root)).url
        name = f"login_etl_bench_{uuid.uuid4().hex[:8]}"
        with _autocommit(admin_url) as conn, translated("create the benchmark database"):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield _with_database(admin_url, name)
        finally:
            with _autocommit(admin_url) as conn, translated("drop the benchmark database"):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


@contextlib.contextmanager
def _autocommit(url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection outside any transaction (CREATE and DROP DATABASE need one), opened by the
    adapter, whose errors quote none of the URL."""
    with connect(url) as conn:
        conn.autocommit = True
        yield conn


def _drain(
    report: BenchReport, queue_url: str, database_url: str, keyset: Path, work: Path
) -> None:
    """`login-etl run --until-empty` in a child process: wall time, CPU, peak RSS."""
    o = report.options
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGIN_ETL_")} | {
        "LOGIN_ETL_QUEUE_URL": queue_url,
        "LOGIN_ETL_DATABASE_URL": database_url,
        "LOGIN_ETL_KEYSET_FILE": str(keyset),
        "LOGIN_ETL_POLLERS": str(o.pollers),
        "LOGIN_ETL_BATCH_SIZE": str(o.batch_size),
        "LOGIN_ETL_LOG_LEVEL": "WARNING",
        "LOGIN_ETL_SQS_PROTOCOL": o.sqs_protocol,
    }
    command = [sys.executable, "-m", "login_etl", "run", "--until-empty"]
    if o.processes > 1:
        command += ["--processes", str(o.processes)]
    profile_file = work / "worker.prof"
    if o.profile:
        command[1:3] = ["-m", "cProfile", "-o", str(profile_file), "-m", "login_etl"]
    before_cpu, before_busy = cpu.snapshot(), cpu.busy_seconds()
    started = time.perf_counter()
    with (work / "stdout").open("w+") as stdout, (work / "stderr").open("w+") as stderr:
        child = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)  # noqa: S603
        peak_mb = 0.0
        # wait4, not RUSAGE_CHILDREN: the CPU of this child (and its own children) alone, not
        # of every process the benchmark ever started. Polled, because the memory high-water
        # mark is readable only while the child runs.
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak_mb = max(peak_mb, cpu.peak_rss_mb(child.pid))
            time.sleep(0.05)
        report.worker_peak_rss_mb = peak_mb
        child.returncode = os.waitstatus_to_exitcode(status)
        report.drain_s = time.perf_counter() - started
        after_cpu, busy = cpu.snapshot(), cpu.busy_seconds() - before_busy
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read(), stderr.read()
    if child.returncode != 0:
        raise RuntimeError(f"login-etl run failed ({child.returncode}): {err[-2000:]}")
    report.drain_summary = out.strip().splitlines()[-1]
    with connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM login_etl.processed_messages").fetchone()
    if row is None or row[0] != o.messages:
        raise RuntimeError(f"the drain committed {row} of {o.messages} messages")
    report.worker_cpu_s = usage.ru_utime + usage.ru_stime
    emulator = {k: after_cpu[k] - before_cpu.get(k, 0.0) for k in after_cpu if k.startswith("sqs")}
    report.cpu_split = {"login-etl worker": report.worker_cpu_s, **emulator}
    report.cpu_split["postgresql and other"] = max(
        0.0, busy - report.worker_cpu_s - sum(emulator.values())
    )
    if o.profile and profile_file.exists():
        # Self time, not cumulative: the batcher thread's own work (transform, COPY, waits).
        # cProfile sees only that thread; the pollers and deleters are boto3 calls, whose cost
        # shows as the worker's CPU seconds above.
        entries = pstats.Stats(str(profile_file)).stats  # type: ignore[attr-defined]
        ranked = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)
        for (filename, line, function), (_cc, calls, own, cumulative, _callers) in ranked[:15]:
            report.profile_top.append(
                f"    {own:6.2f} s own {cumulative:6.2f} s total {calls:>8} calls  "
                f"{Path(filename).name}:{line} {function}"
            )


def _truncate(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute("TRUNCATE user_logins, login_etl.processed_messages, login_etl.rejected_messages")
    conn.commit()


def run_bench(options: BenchOptions) -> BenchReport:
    """Everything `login-etl bench` measures; servers it starts are stopped before it returns."""
    report = BenchReport(options=options, machine=_machine())
    malformed = round(options.messages * options.malformed_pct / 100)
    bodies = generate_bodies(options.messages, malformed=malformed, repeats=options.messages // 50)
    with (
        tempfile.TemporaryDirectory(prefix="login-etl-bench-") as tmp,
        _scratch_database(options.database_url) as database_url,
    ):
        work = Path(tmp)
        keyset = work / "keys.json"
        create_key_file(keyset)
        keys = load_key_file(keyset)
        transform = Transformer(keys.masker, keys.sealer)
        messages = [Message(f"bench-{i}", b, 1_700_000_000_000 + i) for i, b in enumerate(bodies)]
        report.transform_rate = stages.transform_rate(transform, messages)
        with connect(database_url) as conn:
            migrate(conn)
        outcomes = [transform(m) for m in messages]
        for batch in sorted({options.batch_size, 5000}):
            with connect(database_url) as conn:
                _truncate(conn)
            report.load_rates[batch] = stages.load_rate(database_url, outcomes, batch)
        report.rekey_rate, rekeyed = stages.rekey_rate(database_url, read_key_file(keyset))
        report.rekeyed_values = rekeyed.values + rekeyed.bodies
        if options.ledger_rows:
            report.ledger_rates = ledger.ledger_load_rates(
                database_url, transform, messages, options.batch_size, options.ledger_rows
            )
        if options.stages_only:
            return report
        threads = options.pollers * options.processes
        client = queues.client(
            options.endpoint_url,
            connections=max(threads, queues.PUBLISHERS),
            protocol=options.sqs_protocol,
        )
        for _ in range(options.rounds):
            raw_queue = queues.create_queue(client, "raw")
            run_queue = queues.create_queue(client, "run")
            try:
                report.publish_s = queues.fill(client, raw_queue, bodies)
                with queues.QueueWatch(client, raw_queue, options.messages) as watch:
                    queues.drain_raw(client, raw_queue, options.messages, threads)
                    time.sleep(2 * watch.SAMPLE_S)  # let the watch see the queue empty
                report.raw_rates.append(watch.rate)
                queues.fill(client, run_queue, bodies)
                # The worker reaches the emulator through the endpoint given, path-style.
                queue_url = options.endpoint_url.rstrip("/") + urlsplit(run_queue).path
                with connect(database_url) as conn:
                    _truncate(conn)
                with queues.QueueWatch(client, run_queue, options.messages) as watch:
                    _drain(report, queue_url, database_url, keyset, work)
                report.drain_rates.append(options.messages / report.drain_s)
                report.steady_rates.append(watch.rate)
            finally:
                for url in (raw_queue, run_queue):
                    with contextlib.suppress(Exception):
                        client.delete_queue(QueueUrl=url)
    return report
