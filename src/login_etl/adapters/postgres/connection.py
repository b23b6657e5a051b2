"""Connections and the one place psycopg errors become login-etl errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pgerrors

from login_etl.errors import RowRefused, SinkError, SinkUnavailable

APPLICATION_NAME = "login-etl"
CONNECT_TIMEOUT_S = 5

# SQLSTATE classes worth retrying: 08 connection exception, 57P admin shutdown/crash recovery,
# 53 insufficient resources, 40 serialization failure/deadlock.
_TRANSIENT_CLASSES = ("08", "57P", "53", "40")


# libpq gives no SQLSTATE for a refused connection, only its message; these say that retrying
# will not help (a wrong database, role or password, or a server that bars us).
_PERMANENT_CONNECT = (
    "does not exist",
    "authentication failed",
    "pg_hba.conf",
    "permission denied",
    "invalid",
)


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection: SinkUnavailable if the server cannot be reached now, SinkError if it
    refuses us for good."""
    try:
        return psycopg.connect(
            url,
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
    except psycopg.OperationalError as err:
        message = first_line(err)
        if any(marker in message for marker in _PERMANENT_CONNECT):
            raise SinkError(f"PostgreSQL refused the connection: {message}") from None
        raise SinkUnavailable(f"PostgreSQL unreachable: {message}") from None
    except psycopg.Error as err:
        # A malformed URL: libpq's message may quote the password, so it is not repeated.
        raise SinkError(f"the database URL is not usable ({type(err).__name__})") from None


def first_line(err: Exception) -> str:
    # libpq messages can span lines with hints; the first line says what happened. The URL and
    # password are never part of them.
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def translate(err: psycopg.Error, action: str) -> Exception:
    """SinkUnavailable for connection-level and retryable failures, SinkError for the rest."""
    sqlstate = err.sqlstate or ""
    if isinstance(err, psycopg.OperationalError | psycopg.InterfaceError) and not sqlstate:
        return SinkUnavailable(f"PostgreSQL {action}: {first_line(err)}")
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
