"""Every LOGIN_ETL_* name in the deployment files is a setting of login_etl.config.Settings: a
misspelt variable would otherwise be ignored and its default used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from login_etl.config import ENV_PREFIX, Settings
from tests.deploy.manifests import COMPOSE, DOCKERFILE, K8S, ROOT, cfn_templates

ENV_NAME = re.compile(rf"\b{ENV_PREFIX}[A-Z0-9_]+\b")


def known_settings() -> set[str]:
    return {
        ENV_PREFIX + name.upper()
        for name, field in Settings.model_fields.items()
        # A field read from other variables (aws_endpoint_url: AWS_ENDPOINT_URL) has no
        # LOGIN_ETL_ name.
        if field.validation_alias is None
    }


def unknown_settings(text: str) -> set[str]:
    return set(ENV_NAME.findall(text)) - known_settings()


def deploy_files() -> list[Path]:
    return [DOCKERFILE, COMPOSE, *sorted(K8S.glob("*.yaml")), *cfn_templates()]


@pytest.mark.parametrize("path", deploy_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_login_etl_name_is_a_setting(path):
    assert unknown_settings(path.read_text(encoding="utf-8")) == set()


def test_the_files_do_name_settings():
    named = set().union(*(ENV_NAME.findall(p.read_text(encoding="utf-8")) for p in deploy_files()))
    assert {
        "LOGIN_ETL_QUEUE_URL",
        "LOGIN_ETL_DATABASE_URL",
        "LOGIN_ETL_KEYSET_FILE",
        "LOGIN_ETL_METRICS_PORT",
    } <= named


def test_unknown_setting_names_are_found():
    assert known_settings() >= {"LOGIN_ETL_QUEUE_URL", "LOGIN_ETL_POLLERS"}
    # Once listed by hand as pending; real settings now, known from Settings alone.
    assert known_settings() >= {"LOGIN_ETL_METRICS_PORT", "LOGIN_ETL_LOG_FORMAT"}
    assert "LOGIN_ETL_AWS_ENDPOINT_URL" not in known_settings()
    text = "LOGIN_ETL_QUEUE_URL=x LOGIN_ETL_QUEUE_URLS=y\n  - name: LOGIN_ETL_BATCHSIZE\n"
    assert unknown_settings(text) == {"LOGIN_ETL_QUEUE_URLS", "LOGIN_ETL_BATCHSIZE"}
