"""Factories shared by every test tier."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

from login_etl.core.model import Message
from login_etl.keys import KeyRing, create_key_file, load_key_file

ABSENT = object()  # pass as a field's value to leave the field out

SAMPLE_DATA = Path(
    os.environ.get(
        "LOGIN_ETL_SAMPLE_DATA",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "sample_data.json.gz",
    )
)

VALID_EVENT: dict[str, Any] = {
    "user_id": "424cdd21-063a-43a7-b91b-7ca1a833afae",
    "app_version": "2.3.0",
    "device_type": "android",
    "ip": "199.172.111.135",
    "locale": "RU",
    "device_id": "593-47-5928",
}


def event(**fields: Any) -> dict[str, Any]:
    """A valid event with some fields replaced (or removed with ABSENT)."""
    merged = {**VALID_EVENT, **fields}
    return {k: v for k, v in merged.items() if v is not ABSENT}


def body(**fields: Any) -> str:
    return json.dumps(event(**fields))


def message(
    body_text: str, *, message_id: str = "m-1", sent_ms: int = 1_700_000_000_000
) -> Message:
    return Message(message_id=message_id, body=body_text, sent_timestamp_ms=sent_ms, receipt="r")


def sample_bodies() -> list[str]:
    """The exercise's 100 messages as JSON bodies; skips the test when ../shared is absent."""
    if not SAMPLE_DATA.exists():
        pytest.skip(f"sample data not found at {SAMPLE_DATA}")
    with gzip.open(SAMPLE_DATA, "rt", encoding="utf-8") as stream:
        return [json.dumps(item) for item in json.load(stream)]


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    create_key_file(path)
    return path


@pytest.fixture(scope="session")
def keys(key_file: Path) -> KeyRing:
    return load_key_file(key_file)
