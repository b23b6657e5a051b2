"""Database credentials: the RDS-form secret's parsing, caching, re-reading on a refused login,
IAM tokens, and a password that never prints."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from login_etl.adapters.postgres import connection
from login_etl.adapters.postgres.credentials import (
    ROTATION_GRACE_S,
    Credentials,
    IamTokens,
    Login,
    parse_login,
)
from login_etl.config.secretref import SecretRef, parse_secret_ref
from login_etl.errors import SecretError, SecretUnavailable, SinkError

REF = parse_secret_ref("prod/login-etl/db", "LOGIN_ETL_DATABASE_SECRET (--database-secret)")
PASSWORD = "s3cr3t 'pw' \\ with=odd chars"
RDS_SECRET = {
    "engine": "postgres",
    "host": "db.abc123.eu-west-1.rds.amazonaws.com",
    "port": 5432,
    "username": "etl",
    "password": PASSWORD,
    "dbname": "logins",
}


def secret_text(**changes: Any) -> str:
    fields = {**RDS_SECRET, **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not None})


class FakeSecret:
    """A SecretStore double: hands out `values` in turn (the last one again), counts reads."""

    def __init__(self, *values: str | Exception, pending: str | None = None) -> None:
        self.ref: SecretRef = REF
        self.values = list(values)
        self.reads = 0
        self.pending = pending  # what AWSPENDING holds (a rotation under way), if anything

    def read(self) -> str:
        self.reads += 1
        value = self.values[min(self.reads, len(self.values)) - 1]
        if isinstance(value, Exception):
            raise value
        return value

    def read_pending(self) -> str | None:
        return self.pending


def with_secret(*values: str | Exception, url: str | None = None, **kw: Any) -> Credentials:
    fake: Any = FakeSecret(*values)
    return Credentials(url, secret=fake, **kw)


def reads(creds: Credentials) -> int:
    fake: Any = creds._secret  # the FakeSecret given to `with_secret`
    return int(fake.reads)


# --- the secret's form ----------------------------------------------------------------------------


def test_the_rds_form_gives_the_server_and_the_login() -> None:
    login = parse_login(secret_text(), REF)
    assert login == Login("db.abc123.eu-west-1.rds.amazonaws.com", 5432, "etl", "logins", PASSWORD)


def test_port_and_dbname_are_optional_and_a_port_may_be_a_string() -> None:
    login = parse_login(secret_text(port=None, dbname=None, engine=None), REF)
    assert (login.port, login.dbname) == (5432, "postgres")
    assert parse_login(secret_text(port="6543"), REF).port == 6543


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json at all " + PASSWORD, "is not JSON"),
        (json.dumps([PASSWORD]), "is not a JSON object"),
        (secret_text(host=None), "has no 'host'"),
        (secret_text(username=None), "has no 'username'"),
        (secret_text(password=None), "has no 'password'"),
        (secret_text(password=12345), "'password' must be a non-empty string"),
        (secret_text(password=""), "'password' must be a non-empty string"),
        (secret_text(host=["h"]), "'host' must be a non-empty string"),
        (secret_text(host=f"x@{PASSWORD}"), "'host' must be one host name or IP address"),
        (secret_text(port="54x2"), "'port' must be a number from 1 to 65535"),
        (secret_text(port=True), "'port' must be a number from 1 to 65535"),
        (secret_text(port=70000), "'port' must be a number from 1 to 65535"),
        (secret_text(engine="mysql"), "'engine' must be postgres or aurora-postgresql"),
    ],
)
def test_a_secret_not_in_the_rds_form_is_named_with_its_field_never_its_value(
    text: str, says: str
) -> None:
    with pytest.raises(SecretError) as caught:
        parse_login(text, REF)
    message = str(caught.value)
    assert message.startswith(
        "LOGIN_ETL_DATABASE_SECRET (--database-secret): secret prod/login-etl/db: "
    )
    assert says in message
    assert PASSWORD not in message
    assert "s3cr3t" not in message


def test_with_iam_auth_the_secret_needs_no_password() -> None:
    assert parse_login(secret_text(password=None), REF, need_password=False).password is None


def test_the_password_never_prints() -> None:
    creds = with_secret(secret_text())
    creds.conninfo()
    login = parse_login(secret_text(), REF)
    for shown in (repr(login), str(login), repr(creds), str(creds), creds.where):
        assert "s3cr3t" not in shown
    assert repr(creds) == "Credentials(secret prod/login-etl/db)"


# --- the connection string ------------------------------------------------------------------------


def test_the_connection_string_is_made_by_psycopg_and_round_trips_an_odd_password() -> None:
    params = conninfo_to_dict(with_secret(secret_text()).conninfo())
    assert params == {
        "host": "db.abc123.eu-west-1.rds.amazonaws.com",
        "port": "5432",
        "user": "etl",
        "dbname": "logins",
        "password": PASSWORD,
        "sslmode": "require",  # a remote host: the password goes over TLS only
    }


def test_the_url_beside_a_secret_adds_its_options() -> None:
    creds = with_secret(secret_text(), url="postgresql://?sslmode=verify-full&sslrootcert=/ca.pem")
    params = conninfo_to_dict(creds.conninfo())
    assert (params["sslmode"], params["sslrootcert"], params["user"]) == (
        "verify-full",
        "/ca.pem",
        "etl",
    )


def test_a_plain_url_is_used_as_it_is() -> None:
    url = "postgresql://u:p@h:5433/d?sslmode=require"
    assert Credentials(url).conninfo() == url
    assert Credentials(url).refresh(None) is False
    assert Credentials(url).where == "h:5433"


# --- caching and re-reading -----------------------------------------------------------------------


def test_the_secret_is_read_once_and_cached() -> None:
    creds = with_secret(secret_text())
    for _ in range(3):
        creds.conninfo()
    assert reads(creds) == 1


def refused(creds: Credentials) -> bool:
    """What `connect` does when the server refuses the login it was given."""
    _, used = creds.attempt()
    return creds.refresh(used)


def test_refresh_reads_again_and_says_whether_the_login_changed() -> None:
    creds = with_secret(secret_text(), secret_text(), secret_text(password="rotated"))
    assert refused(creds) is False, "the same password: not worth another try"
    assert refused(creds) is True
    assert conninfo_to_dict(creds.conninfo())["password"] == "rotated"
    assert reads(creds) == 3


def test_a_refused_current_login_tries_the_version_a_rotation_has_pending() -> None:
    """Between a rotation's setSecret and finishSecret the database already has the pending
    password: that is the one to try (and a pending one equal to what failed is not)."""
    fake: Any = FakeSecret(secret_text(), pending=secret_text(password="pending"))
    creds = Credentials(None, secret=fake)
    assert refused(creds) is True
    assert conninfo_to_dict(creds.conninfo())["password"] == "pending"
    # Refused again (a stale pending version): back to the current one.
    assert refused(creds) is True
    assert conninfo_to_dict(creds.conninfo())["password"] == PASSWORD

    fake_same: Any = FakeSecret(secret_text(), pending=secret_text())
    assert refused(Credentials(None, secret=fake_same)) is False


def test_a_login_another_thread_already_replaced_is_retried_without_a_read() -> None:
    """Two connections refused in one rotation: the second finds the first's new login and
    tries it, instead of reading again and going back to the refused one."""
    creds = with_secret(secret_text(), secret_text(password="rotated"), secret_text())
    _, first = creds.attempt()
    _, second = creds.attempt()
    assert creds.refresh(first) is True
    assert creds.refresh(second) is True
    assert conninfo_to_dict(creds.conninfo())["password"] == "rotated"
    assert reads(creds) == 2


def test_a_refusal_after_success_is_waited_out_for_a_while_and_not_before() -> None:
    creds = with_secret(secret_text())
    assert creds.refusal_is_transient(0.0) is False, "never connected: a wrong secret"
    creds.connected()
    assert creds.refusal_is_transient(100.0) is True
    assert creds.refusal_is_transient(100.0 + ROTATION_GRACE_S - 1) is True
    assert creds.refusal_is_transient(100.0 + ROTATION_GRACE_S) is False
    creds.connected()  # the rotation finished: a later refusal gets the grace again
    assert creds.refusal_is_transient(10_000.0) is True
    assert Credentials("postgresql://h/d").refusal_is_transient(0.0) is False


def test_a_password_from_a_secret_goes_to_a_remote_host_over_tls_only() -> None:
    remote = conninfo_to_dict(with_secret(secret_text(host="db.example")).conninfo())
    assert remote["sslmode"] == "require"
    for host in ("127.0.0.1", "localhost", "::1", "/var/run/postgresql"):
        local = conninfo_to_dict(with_secret(secret_text(host=host)).conninfo())
        assert "sslmode" not in local, host
    chosen = with_secret(secret_text(host="db.example"), url="postgresql://?sslmode=disable")
    assert conninfo_to_dict(chosen.conninfo())["sslmode"] == "disable"


CONNECTION: Any = object()  # what the fake server's `_open` returns


class FakeServer:
    """Stands in for `connection._open`: accepts only `password`, records what was tried."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, password: str) -> None:
        self.password = password
        self.tried: list[str] = []
        monkeypatch.setattr(connection, "_open", self.open)

    def open(self, conninfo: str) -> Any:
        tried = str(conninfo_to_dict(conninfo).get("password"))
        self.tried.append(tried)
        if tried != self.password:
            raise psycopg.OperationalError(
                'connection failed: FATAL:  password authentication failed for user "etl"'
            )
        return CONNECTION


def test_a_refused_login_reads_the_secret_again_and_retries_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer(monkeypatch, password="rotated")
    creds = with_secret(secret_text(), secret_text(password="rotated"))
    creds.conninfo()  # the old password is cached, as by an earlier connection
    assert connection.connect(creds) is CONNECTION
    assert server.tried == [PASSWORD, "rotated"]
    assert connection.connect(creds) is CONNECTION
    assert reads(creds) == 2, "the new password is cached"


def test_a_refused_login_the_secret_still_holds_is_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer(monkeypatch, password="someone else's")
    creds = with_secret(secret_text())
    with pytest.raises(SinkError, match="wrong password for the user") as caught:
        connection.connect(creds)
    assert server.tried == [PASSWORD]
    assert reads(creds) == 2
    assert "s3cr3t" not in str(caught.value)
    assert "db.abc123.eu-west-1.rds.amazonaws.com:5432" in str(caught.value)


def test_a_url_login_refused_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer(monkeypatch, password="right")
    with pytest.raises(SinkError):
        connection.connect("postgresql://etl:wrong@db:5432/logins")
    assert server.tried == ["wrong"]


def test_a_secret_that_cannot_be_reached_now_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeServer(monkeypatch, password=PASSWORD)
    down = SecretUnavailable("LOGIN_ETL_DATABASE_SECRET: secret x: could not be reached")
    creds = with_secret(down, secret_text())
    with pytest.raises(SecretUnavailable):
        connection.connect(creds)
    assert connection.connect(creds) is CONNECTION, "read again at the next try"


def test_a_secret_unreachable_when_read_again_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeServer(monkeypatch, password="rotated")
    down = SecretUnavailable("LOGIN_ETL_DATABASE_SECRET: secret x: could not be reached")
    creds = with_secret(secret_text(), down)
    with pytest.raises(SecretUnavailable):
        connection.connect(creds)


# --- IAM authentication ---------------------------------------------------------------------------


class FakeRds:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def generate_db_auth_token(self, **kwargs: Any) -> str:
        self.calls.append(kwargs)
        return f"token-{len(self.calls)}"


def test_iam_auth_signs_a_token_for_each_connection_over_tls() -> None:
    rds = FakeRds()
    creds = with_secret(
        secret_text(password=None), iam=True, iam_tokens=IamTokens(rds, "eu-west-1")
    )
    first, second = conninfo_to_dict(creds.conninfo()), conninfo_to_dict(creds.conninfo())
    assert (first["password"], second["password"]) == ("token-1", "token-2")
    assert first["sslmode"] == "require"
    assert rds.calls[0] == {
        "DBHostname": "db.abc123.eu-west-1.rds.amazonaws.com",
        "Port": 5432,
        "DBUsername": "etl",
        "Region": "eu-west-1",
    }


def test_iam_auth_from_a_url_keeps_a_stronger_sslmode() -> None:
    rds = FakeRds()
    creds = Credentials(
        "postgresql://etl@db.example:6432/logins?sslmode=verify-full",
        iam=True,
        iam_tokens=IamTokens(rds, "us-east-2"),
    )
    params = conninfo_to_dict(creds.conninfo())
    assert (params["sslmode"], params["password"], params["user"]) == (
        "verify-full",
        "token-1",
        "etl",
    )
    assert rds.calls[0]["Port"] == 6432


def test_iam_tokens_are_signed_by_boto3_for_the_region_in_the_rds_host_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    tokens = IamTokens.for_host("db.abc123.eu-west-1.rds.amazonaws.com", "us-east-1")
    token = tokens.token("db.abc123.eu-west-1.rds.amazonaws.com", 5432, "etl")
    assert tokens.region == "eu-west-1"
    assert token.startswith("db.abc123.eu-west-1.rds.amazonaws.com:5432/?Action=connect")
    assert "DBUser=etl" in token
    assert "eu-west-1%2Frds-db%2Faws4_request" in token


def test_pgsslmode_in_the_environment_is_never_weakened(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sslmode written into the connection string would outrank PGSSLMODE: none is written."""
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    params = conninfo_to_dict(with_secret(secret_text(host="db.example")).conninfo())
    assert "sslmode" not in params  # libpq takes verify-full from the environment
