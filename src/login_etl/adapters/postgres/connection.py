"""Connections and the one place psycopg errors become login-etl errors."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pgerrors

from login_etl.adapters.postgres.credentials import Credentials
from login_etl.config.dburl import DATABASE_URL
from login_etl.errors import ConfigError, RowRefused, SinkError, SinkUnavailable

APPLICATION_NAME = "login-etl"
CONNECT_TIMEOUT_S = 5

# SQLSTATE classes worth retrying: 08 connection exception, 57P admin shutdown/crash recovery,
# 53 insufficient resources, 40 serialization failure/deadlock.
_TRANSIENT_CLASSES = ("08", "57P", "53", "40")


SETTING = DATABASE_URL
log = logging.getLogger(__name__)

# libpq gives no SQLSTATE for a connection it could not open, only a message, and that message
# quotes the host, the user or the database name, and, of a URL it misread, part of the password
# ("failed to resolve host 'Secret-Pw@db'"). So the message is only matched against these
# patterns, first match wins, and the failure is told in our own words: (pattern, what happened,
# whether retrying may help).
_CONNECT_FAILURES: tuple[tuple[re.Pattern[str], str, bool], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), what, transient)
    for pattern, what, transient in (
        ("password authentication failed", "wrong password for the user", False),
        ("no password (was )?supplied|password is required", "a password is required", False),
        ("authentication failed|authentication method", "authentication failed", False),
        (r'\brole ".*" does not exist', "the user does not exist", False),
        (r'\bdatabase ".*" does not exist', "the database does not exist", False),
        (r"pg_hba\.conf", "pg_hba.conf admits no such connection", False),
        ("not permitted to log in|permission denied", "the user may not log in here", False),
        (r"\bSSL\b|certificate", "SSL failed (check sslmode and certificates)", False),
        ("invalid response|frontend protocol", "the server does not speak PostgreSQL", False),
        ("failed to resolve host|translate host name", "the host name does not resolve", True),
        ("connection refused", "connection refused (is the server running?)", True),
        ("timeout expired|timed out", "the connection timed out", True),
        ("no such file or directory", "no server on that Unix socket", True),
        ("network is unreachable|no route to host", "no route to the host", True),
        ("starting up|shutting down|in recovery", "the server is restarting", True),
        ("too many clients|connection slots", "the server has no free connection slot", True),
    )
)
# The failures that a rotated password causes: worth reading the secret again (`connect`).
_LOGIN_REFUSED = frozenset(
    {"wrong password for the user", "a password is required", "authentication failed"}
)
# psycopg says "connection is bad" when libpq refuses to start at all: a parameter value that
# `login_etl.config.dburl` did not foresee, or a local requirement it cannot meet. The server says
# "invalid value for parameter" of a setting in the URL's `options`.
_REFUSED_URL = re.compile(r"^connection is bad:|invalid value for parameter", re.IGNORECASE)


def connect(target: str | Credentials) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection to a URL or with `Credentials`: SinkUnavailable if the server cannot be
    reached now, SinkError if it refuses us for good, ConfigError if libpq refuses the URL,
    SecretError/SecretUnavailable if the secret cannot be read. Messages quote none of the URL
    but its host and port, and none of libpq's message.

    A login the server refuses makes the credentials read their secret again, and if it changed
    (a rotation) the connection is tried once more with the new one."""
    creds = target if isinstance(target, Credentials) else Credentials(target)
    conninfo, used = creds.attempt()
    try:
        conn = _open(conninfo)
    except psycopg.Error as err:
        if not (_login_refused(err) and creds.refresh(used)):
            raise _refused(err, creds) from None
        log.info("the database refused the login; trying the new one in the secret")
        try:
            conn = _open(creds.conninfo())
        except psycopg.Error as again:
            raise _refused(again, creds) from None
    creds.connected()
    return conn


def _refused(err: psycopg.Error, creds: Credentials) -> Exception:
    """connect_error, except that a login refused while the secret has nothing newer is waited
    out for a while once the credentials have worked: a rotation by hand changes the password in
    the database before the secret."""
    translated = connect_error(err, creds.where, creds.setting)
    if _login_refused(err) and creds.refusal_is_transient(time.monotonic()):
        return SinkUnavailable(f"{translated}; waiting for the secret to follow a rotation")
    return translated


def _open(conninfo: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        conninfo,
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name=APPLICATION_NAME,
        # Python encodes UTF-8; the server converts to the database's encoding and reports a
        # character it cannot store as a data error (a row to quarantine, not a crash).
        client_encoding="utf8",
        # Notice a dead server within about a minute instead of the kernel's two hours.
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )


def _failure(err: psycopg.Error) -> tuple[str, bool] | None:
    """What a failed connect was, in our words, and whether retrying may help; None: unknown."""
    if isinstance(err, psycopg.OperationalError):
        for pattern, what, transient in _CONNECT_FAILURES:
            if pattern.search(str(err)):
                return what, transient
    return None


def _login_refused(err: psycopg.Error) -> bool:
    failure = _failure(err)
    return failure is not None and failure[0] in _LOGIN_REFUSED


def connect_error(err: psycopg.Error, where: str, setting: str = SETTING) -> Exception:
    """The login-etl error for a connection to `where` that failed with `err`; `setting` is
    named when libpq refuses a parameter (the URL, or the secret that gave the host)."""
    if failure := _failure(err):
        what, transient = failure
        if transient:
            return SinkUnavailable(f"PostgreSQL unreachable at {where}: {what}")
        return SinkError(f"PostgreSQL refused the connection at {where}: {what}")
    if isinstance(err, psycopg.OperationalError) and not _REFUSED_URL.search(str(err)):
        return SinkUnavailable(f"PostgreSQL unreachable at {where}: the connection failed")
    return ConfigError(
        f"{setting}: libpq does not accept a connection parameter ({type(err).__name__}); "
        "see https://www.postgresql.org/docs/current/libpq-connect.html"
    )


def first_line(err: Exception) -> str:
    """The first line of a server error: what happened (hints and DETAIL follow on others).
    Only for errors with a SQLSTATE, which the server wrote about a statement: libpq's own
    messages may quote the connection's host, user or database."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


# What a connection-level error (no SQLSTATE) after connecting is, in our own words.
_LOST = (
    (re.compile(r"timeout|timed out", re.I), "timed out"),
    (re.compile(r"SSL", re.I), "SSL error on the connection"),
    (re.compile(r"closed|lost|terminat|broken|reset", re.I), "the connection was lost"),
)


def _connection_failure(err: psycopg.Error) -> str:
    text = str(err)
    what = next((what for pattern, what in _LOST if pattern.search(text)), "the connection failed")
    return f"{what} ({type(err).__name__})"


def translate(err: psycopg.Error, action: str) -> Exception:
    """SinkUnavailable for connection-level and retryable failures, SinkError for the rest."""
    sqlstate = err.sqlstate or ""
    if isinstance(err, psycopg.OperationalError | psycopg.InterfaceError) and not sqlstate:
        return SinkUnavailable(f"PostgreSQL {action}: {_connection_failure(err)}")
    if sqlstate.startswith(_TRANSIENT_CLASSES):
        return SinkUnavailable(f"PostgreSQL {action}: {first_line(err)} (SQLSTATE {sqlstate})")
    if isinstance(
        err, pgerrors.UndefinedTable | pgerrors.UndefinedColumn | pgerrors.UndefinedFunction
    ):
        return SinkError(
            f"PostgreSQL {action}: {first_line(err)}; run `login-etl migrate` (SQLSTATE {sqlstate})"
        )
    if sqlstate.startswith(("22", "23")):
        return RowRefused(f"PostgreSQL {action}: {first_line(err)} (SQLSTATE {sqlstate})", sqlstate)
    return SinkError(f"PostgreSQL {action}: {first_line(err)} (SQLSTATE {sqlstate or '?'})")


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Re-raise psycopg errors inside the block as login-etl errors."""
    try:
        yield
    except psycopg.Error as err:
        raise translate(err, action) from err
