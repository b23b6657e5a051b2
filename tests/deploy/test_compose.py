"""docker-compose.yml against the Compose spec (check-jsonschema's vendored copy of its schema),
and the services the exercise and the worker need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.manifests import COMPOSE


def check_compose(path: Path) -> tuple[int, list[dict[str, Any]]]:
    """check-jsonschema's exit status and errors for a compose file (vendored schema: offline)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            "--output-format",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    report = json.loads(result.stdout)
    return result.returncode, report["errors"] + report.get("parse_errors", [])


def test_compose_file_matches_the_compose_spec():
    status, errors = check_compose(COMPOSE)
    assert (status, errors) == (0, [])


def test_compose_check_fails_on_an_unknown_key(tmp_path):
    broken = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    broken["services"]["worker"]["enviroment"] = {"LOGIN_ETL_POLLERS": "8"}  # misspelt
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    status, errors = check_compose(path)
    assert status == 1
    assert [e["path"] for e in errors] == ["$.services.worker"]
    assert "'enviroment' was unexpected" in errors[0]["message"]


def test_compose_check_fails_on_a_value_out_of_its_set(tmp_path):
    broken = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    broken["services"]["worker"]["depends_on"]["postgres"]["condition"] = "service_ready"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    status, errors = check_compose(path)
    assert status == 1
    # depends_on is a list or a map (oneOf), so the error is reported at depends_on itself.
    assert errors[0]["path"].startswith("$.services.worker.depends_on")


def test_compose_keeps_the_exercise_services_and_publishes_the_worker_metrics():
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    assert services["localstack"]["image"] == "fetchdocker/data-takehome-localstack"
    assert "4566:4566" in services["localstack"]["ports"]
    assert services["postgres"]["image"] == "fetchdocker/data-takehome-postgres"
    assert "5432:5432" in services["postgres"]["ports"]
    worker = services["worker"]
    assert worker["profiles"] == ["worker"]
    port = worker["environment"]["LOGIN_ETL_METRICS_PORT"]
    assert f"{port}:{port}" in worker["ports"]
    assert port in worker["expose"]
    probe = " ".join(worker["healthcheck"]["test"])
    assert worker["healthcheck"]["test"][0] == "CMD"
    assert "/readyz" in probe
    assert "LOGIN_ETL_METRICS_PORT" in probe
