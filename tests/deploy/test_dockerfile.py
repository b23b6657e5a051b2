"""The Dockerfile by this project's rules (parsed with dockerfile-parse): a multi-stage build on
pinned bases, a slim final stage, a fixed unprivileged uid, a health check, locked installs."""

from __future__ import annotations

import io
import re
from typing import Any

from dockerfile_parse import DockerfileParser

from tests.deploy.manifests import DOCKERFILE, dockerfile_user_id


def dockerfile_problems(text: str) -> list[str]:
    """What is wrong with a Dockerfile by this project's rules; empty if nothing."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    instructions = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    starts = [n for n, i in enumerate(instructions) if i["instruction"] == "FROM"]
    if not starts:
        return ["no FROM"]
    stages = [instructions[a:b] for a, b in zip(starts, [*starts[1:], None], strict=True)]
    problems = [] if len(stages) > 1 else ["not a multi-stage build"]
    names: set[str] = set()
    for stage in stages:
        image, *alias = stage[0]["value"].split()
        if image not in names:
            problems += _base_image_problems(image)
        if len(alias) == 2 and alias[0].upper() == "AS":
            names.add(alias[1])
    final = stages[-1]
    if "slim" not in final[0]["value"].split()[0]:
        problems.append("final stage is not on a slim base")
    problems += _user_problems(final) + _healthcheck_problems(final)
    runs = [" ".join(i["value"].split()) for i in instructions if i["instruction"] == "RUN"]
    for command in (
        "pip install --no-cache-dir -r requirements.lock",
        "pip install --no-cache-dir --no-deps .",
    ):
        if not any(command in run for run in runs):
            problems.append(f"no RUN {command}")
    return problems


def _base_image_problems(image: str) -> list[str]:
    name, _, tag = image.partition("@")[0].rpartition(":")
    if not name or "/" in tag:
        return [f"FROM {image}: no tag"]
    if not re.match(r"^\d+\.\d+\.\d+", tag):
        return [f"FROM {image}: tag is not pinned to a patch release"]
    return []


def _user_problems(stage: list[dict[str, Any]]) -> list[str]:
    users = [i["value"].strip() for i in stage if i["instruction"] == "USER"]
    if not users:
        return ["final stage runs as root (no USER)"]
    uid = users[-1].split(":")[0]
    if not uid.isdigit():
        return [f"USER {users[-1]}: not numeric, so runAsNonRoot cannot check it"]
    if int(uid) == 0:
        return ["final stage runs as root (USER 0)"]
    return []


def _healthcheck_problems(stage: list[dict[str, Any]]) -> list[str]:
    checks = [i["value"] for i in stage if i["instruction"] == "HEALTHCHECK"]
    if not checks or checks[-1].strip().upper() == "NONE":
        return ["no HEALTHCHECK"]
    if "/healthz" not in checks[-1] or "LOGIN_ETL_METRICS_PORT" not in checks[-1]:
        return ["HEALTHCHECK does not ask /healthz on LOGIN_ETL_METRICS_PORT"]
    return []


def test_dockerfile_follows_the_rules():
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


def test_dockerfile_user_is_the_fixed_unprivileged_uid():
    assert dockerfile_user_id() == 10001


def test_dockerfile_check_finds_each_problem():
    bad = """
FROM python:3.11-slim AS build
RUN pip install .
FROM python:latest
HEALTHCHECK NONE
CMD ["login-etl", "run"]
"""
    assert dockerfile_problems(bad) == [
        "FROM python:3.11-slim: tag is not pinned to a patch release",
        "FROM python:latest: tag is not pinned to a patch release",
        "final stage is not on a slim base",
        "final stage runs as root (no USER)",
        "no HEALTHCHECK",
        "no RUN pip install --no-cache-dir -r requirements.lock",
        "no RUN pip install --no-cache-dir --no-deps .",
    ]
    assert dockerfile_problems("FROM ubuntu\nUSER root\n") == [
        "not a multi-stage build",
        "FROM ubuntu: no tag",
        "final stage is not on a slim base",
        "USER root: not numeric, so runAsNonRoot cannot check it",
        "no HEALTHCHECK",
        "no RUN pip install --no-cache-dir -r requirements.lock",
        "no RUN pip install --no-cache-dir --no-deps .",
    ]
