"""A worker as operators see it: metrics and probes while it runs, JSON logs without PII."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any

from login_etl.demo.data import generate_bodies
from login_etl.ports import Backlog
from tests.support import free_port, get, start_worker


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_metrics_and_probes_answer_while_run_works_and_logs_are_json_without_pii(
    cli: Any,
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
) -> None:
    port = free_port()
    bodies = generate_bodies(120, malformed=3)
    send(bodies)
    env = cli.env | {"LOGIN_ETL_METRICS_PORT": str(port), "LOGIN_ETL_LOG_FORMAT": "json"}
    worker = start_worker(env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status, _ = get(base + "/healthz")
            except OSError:
                time.sleep(0.2)
                continue
            if status == 200 and backlog().empty:
                break
            time.sleep(0.2)
        assert get(base + "/healthz") == (200, "ok\n")
        assert get(base + "/readyz") == (200, "ready\n")
        status, text = get(base + "/metrics")
        assert status == 200
        assert metric(text, "login_etl_messages_loaded_total") == 117
        assert metric(text, "login_etl_messages_rejected_total") == 3
        assert 'login_etl_messages_rejected_total{reason="user_id:required"} 3.0' in text
        assert metric(text, "login_etl_batch_seconds_count") >= 1
        assert "login_etl_queue_messages" in text
        assert get(base + "/nothing")[0] == 404
    finally:
        worker.send_signal(signal.SIGTERM)
        _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    batches = [r for r in records if "batch_id" in r and "loaded" in r]
    assert batches, err
    assert {"time", "level", "logger", "message", "received", "duration_ms"} <= set(batches[0])
    rejected = [r for r in records if r.get("reason")]
    assert len(rejected) == 3 and all("message_id" in r for r in rejected)
    assert {r["kind"] for r in rejected} == {"user_id:required"}
    for text_body in bodies:
        item = json.loads(text_body)
        for field in ("ip", "device_id"):
            if field in item:
                assert item[field] not in err


def test_readiness_fails_when_postgres_is_unreachable(cli: Any, tmp_path: Any) -> None:
    from login_etl.demo.services import EmbeddedPostgres

    port = free_port()
    with EmbeddedPostgres(tmp_path) as server:
        env = cli.env | {"LOGIN_ETL_METRICS_PORT": str(port), "LOGIN_ETL_DATABASE_URL": server.url}
        worker = start_worker(env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if get(base + "/readyz")[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            assert get(base + "/readyz") == (200, "ready\n")
            server.stop()
            time.sleep(5.5)  # past the readiness cache
            assert get(base + "/readyz") == (503, "not ready: postgres\n")
            assert get(base + "/healthz")[0] == 200, "alive: it is waiting, not broken"
            server.start()
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=60)
        assert worker.returncode == 0
