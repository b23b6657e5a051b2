"""`login-etl bench` checks its options before it connects anywhere, as every command does:
one line naming the option, exit 2, and no part of a password (issue 9, defects a and h)."""

from __future__ import annotations

import pytest

from login_etl.cli import main

PASSWORD_FRAGMENT = "Secret-Pw"


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    assert PASSWORD_FRAGMENT not in err
    [line] = err.strip().splitlines()
    return line


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("postgresql://etl:my@Secret-Pw@127.0.0.1:5999/etl", "percent-encode"),
        ("postgresql://etl:Secret-Pw@127.0.0.1:99999/etl", "port must be a number"),
        ("postgresql://etl:Secret-Pw@127.0.0.1:5999/etl?sslmode=always", "sslmode must be one"),
    ],
    ids=["unescaped @", "port", "sslmode"],
)
def test_a_bad_database_url_is_one_line_naming_the_option(
    capsys: pytest.CaptureFixture[str], url: str, hint: str
) -> None:
    assert main(["bench", "--stages-only", "--messages", "100", "--database-url", url]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--database-url" in line
    assert hint in line


@pytest.mark.parametrize(
    "endpoint", ["http://localhost:99999", "http://localhost:abc", "localhost:4566"]
)
def test_a_bad_endpoint_url_is_one_line_naming_the_option(
    capsys: pytest.CaptureFixture[str], endpoint: str
) -> None:
    # The database URL is unreachable on purpose: the endpoint must be refused before it.
    code = main(
        [
            "bench",
            "--messages",
            "100",
            "--endpoint-url",
            endpoint,
            "--database-url",
            "postgresql://etl:Secret-Pw@127.0.0.1:1/etl",
        ]
    )
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert "--endpoint-url" in line


def test_an_unreachable_database_is_one_line_in_our_own_words(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Port 1: nothing listens, so libpq fails at once, with a message of its own that the
    # adapter must not pass on.
    url = "postgresql://etl:Secret-Pw@127.0.0.1:1/etl"
    assert main(["bench", "--stages-only", "--messages", "100", "--database-url", url]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "PostgreSQL unreachable at 127.0.0.1:1" in line
