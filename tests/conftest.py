"""Fixtures shared by every test tier; plain helpers and factories are in tests/support.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from login_etl.keys import KeyRing, create_key_file, load_key_file

OWN_KEY_FILE = "own_key_file"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{OWN_KEY_FILE}: the test's key_file is a fresh one of its own (it rotates or rewraps"
        " it), not the session's; such a test loads its keys from key_file, not the keys fixture",
    )


def _new_key_file(directory: Path) -> Path:
    path = directory / "keys.json"
    create_key_file(path)
    return path


@pytest.fixture(scope="session")
def session_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key file for the session: making one costs a Tink keyset generation per field."""
    return _new_key_file(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def key_file(request: pytest.FixtureRequest, session_key_file: Path, tmp_path: Path) -> Path:
    """The session's key file, or a fresh one for a test marked own_key_file."""
    if request.node.get_closest_marker(OWN_KEY_FILE) is None:
        return session_key_file
    if "keys" in request.fixturenames:
        pytest.fail(f"a test marked {OWN_KEY_FILE} loads its keys from key_file, not `keys`")
    return _new_key_file(tmp_path)


@pytest.fixture(scope="session")
def keys(session_key_file: Path) -> KeyRing:
    """The session key file's keys (session-scoped: hypothesis tests take it)."""
    return load_key_file(session_key_file)
