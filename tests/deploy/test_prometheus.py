"""The dashboard (deploy/grafana/) and the alert rules (deploy/prometheus/) against what the
worker exports.

- promtool (Debian's `prometheus` package; `.ci/run` unpacks it when apt is there; these tests
  skip without it): `check rules`, `test rules` (alerts_test.yaml), the dashboard's queries
  parsed as PromQL, and `check metrics` on a live scrape of the worker's metrics server;
- without promtool: every metric name the dashboard and the rules query is one a real registry
  exports, so that renaming a metric fails here rather than silently blanking a panel or
  disarming an alert.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from login_etl.core.model import Outcome
from login_etl.core.transform import Transformer
from login_etl.errors import SinkUnavailable
from login_etl.keys import KeyRing
from login_etl.ports import CommitResult
from login_etl.runtime.committer import Committer
from login_etl.runtime.health import HealthServer
from login_etl.runtime.metrics import PrometheusMetrics
from login_etl.testing import MemoryQueue, MemorySink
from tests.deploy.manifests import ROOT
from tests.support import body, get, message

DASHBOARD = ROOT / "deploy" / "grafana" / "login-etl.json"
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yaml"
ALERTS_TEST = PROMETHEUS / "alerts_test.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: apt-get install prometheus)"
)

# Metric names in PromQL: ours, and Prometheus's own `up` (a scrape target answered).
METRIC_NAME = re.compile(r"\b(?:login_etl_\w+|up)\b")
PROMETHEUS_OWN = frozenset({"up"})


class DownOnce(MemorySink):
    """A sink whose first commit finds the database down: the committer counts the error and
    retries."""

    def commit(self, outcomes: Sequence[Outcome]) -> CommitResult:
        if self.down:
            self.down = False  # back for the retry
            raise SinkUnavailable("database down (test double)")
        return super().commit(outcomes)


def fed_metrics(keys: KeyRing) -> PrometheusMetrics:
    """Metrics moved the way a worker moves them, so that every family has samples: batches
    with rejections, a redelivery, a database error retried, failed deletes, the backlog."""
    metrics = PrometheusMetrics()
    committer = Committer(
        DownOnce(down=True),
        Transformer(keys.masker, keys.sealer),
        metrics=metrics,
        backoff_max_s=0.01,
    )
    batch = [message(body(), message_id="m-1"), message("{", message_id="m-2")]
    batch.append(message(body(ip="not an ip"), message_id="m-3"))
    assert committer.commit(batch, threading.Event()) == CommitResult(
        loaded=1, rejected=2, skipped=0
    )
    assert committer.commit(batch[:1], threading.Event()) == CommitResult(
        loaded=0, rejected=0, skipped=1
    )
    metrics.deletes_failed(1)
    queue = MemoryQueue()
    queue.send(body())
    metrics.backlog(queue.backlog())
    return metrics


def exported_names(metrics: PrometheusMetrics) -> dict[str, set[str]]:
    """Each family the registry exports, with the names of its samples (`_total`, `_bucket`…)."""
    return {
        family.name: {sample.name for sample in family.samples}
        for family in metrics.registry.collect()
    }


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and template variable queries."""
    exprs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "definition") and isinstance(value, str):
                    exprs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    with ALERTS.open(encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return [rule for group in doc["groups"] for rule in group["rules"]]


def unknown_names(exprs: Sequence[str], exported: set[str]) -> set[str]:
    """Metric names the expressions query that nothing exports."""
    return {n for e in exprs for n in METRIC_NAME.findall(e)} - exported - PROMETHEUS_OWN


@pytest.fixture
def metrics(keys: KeyRing) -> PrometheusMetrics:
    return fed_metrics(keys)


@pytest.fixture
def exported(metrics: PrometheusMetrics) -> set[str]:
    return set().union(*exported_names(metrics).values())


# --- names: no promtool needed ----------------------------------------------------------------


def test_every_family_has_samples_once_fed(metrics: PrometheusMetrics) -> None:
    # Otherwise a labelled family would export no sample name, and the checks below would
    # report its names as unknown (or, for promtool, leave it unchecked).
    assert all(exported_names(metrics).values()), exported_names(metrics)


def test_the_dashboard_queries_only_exported_metrics(exported: set[str]) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) > 10
    assert unknown_names(exprs, exported) == set()


def test_the_alert_rules_query_only_exported_metrics(exported: set[str]) -> None:
    exprs = [rule["expr"] for rule in alert_rules()]
    assert len(exprs) >= 5
    assert unknown_names(exprs, exported) == set()


def test_a_renamed_metric_is_caught(exported: set[str]) -> None:
    # The check itself: a name without its `_total`, or an old name, is reported.
    exprs = ["sum(rate(login_etl_messages_loaded[5m])) / rate(login_etl_rows_total[5m]) + up"]
    assert unknown_names(exprs, exported) == {"login_etl_messages_loaded", "login_etl_rows_total"}


def test_the_dashboard_shows_every_family(metrics: PrometheusMetrics) -> None:
    shown = {n for e in dashboard_exprs() for n in METRIC_NAME.findall(e)}
    for family, samples in exported_names(metrics).items():
        queryable = {s for s in samples if not s.endswith("_created")}
        assert queryable & shown, f"{family} is on no dashboard panel"


def test_each_alert_has_a_summary_description_and_runbook_section() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    anchors = {
        heading.strip().lower() for heading in re.findall(r"^#+ (\w+)\s*$", text, re.MULTILINE)
    }
    for rule in alert_rules():
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor} in {page}"


def test_the_dashboard_picks_its_prometheus_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]


# --- promtool ---------------------------------------------------------------------------------


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    """promtool's output; fails the test, showing it, unless promtool exits 0."""
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    assert "SUCCESS: 7 rules found" in promtool("check", "rules", str(ALERTS))


@needs_promtool
def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", ALERTS_TEST.name, cwd=PROMETHEUS)


# Grafana's variables, as Grafana would substitute them, so that promtool can parse the queries.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": ".+"}


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses the expressions of a rule file: each query as a recording rule.
    exprs = []
    for query in dashboard_exprs():
        expr = query
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        if not expr.startswith("label_values("):  # a Grafana function, not PromQL
            exprs.append(expr)
    assert "$" not in "".join(exprs), "a Grafana variable this test does not substitute"
    rules = [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", str(path))


@pytest.fixture
def server(metrics: PrometheusMetrics) -> Iterator[HealthServer]:
    """The worker's HTTP server (as `runtime.wiring.serving` starts it) on a free port."""
    health = HealthServer(0, metrics, {}, host="127.0.0.1")
    health.start()
    yield health
    health.close()


@needs_promtool
def test_promtool_finds_no_problem_in_a_live_scrape(
    server: HealthServer, metrics: PrometheusMetrics
) -> None:
    status, text = get(f"http://127.0.0.1:{server.port}/metrics")
    assert status == 200
    for name in set().union(*exported_names(metrics).values()):
        assert re.search(rf"^{name}[{{ ]", text, re.MULTILINE), f"{name} not served"
    # `check metrics` prints each lint problem (names, units, help text) and then exits 1.
    assert promtool("check", "metrics", stdin=text).strip() == ""
