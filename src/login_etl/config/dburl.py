"""Checks of a PostgreSQL URL, at start-up and in words that quote none of it.

libpq checks most parameter values only when it connects, and its messages quote the value
(`invalid port number: "…"`), so a password typed with an unescaped `@` leaks through them:
`postgresql://etl:my@Secret-Pw@db/etl` makes libpq look for host `Secret-Pw@db`. These checks
catch such URLs before anything connects, and describe the server without the password.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from ipaddress import ip_address

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

SCHEMES = ("postgresql", "postgres")
# The same hint for every way a user name or password can split a URL in the wrong place.
ESCAPE_HINT = (
    "percent-encode any '@', ':', '/', '?', '#' or '%' in the user name and password "
    "(e.g. '@' as %40)"
)
# What libpq accepts for the parameters it checks itself (PostgreSQL 18's libpq-connect docs);
# tests/unit/config/test_dburl.py holds these sets against the libpq that psycopg loads.
CHOICES: dict[str, tuple[str, ...]] = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "sslcertmode": ("disable", "allow", "require"),
    "sslnegotiation": ("postgres", "direct"),
    "target_session_attrs": (
        "any",
        "read-write",
        "read-only",
        "primary",
        "standby",
        "prefer-standby",
    ),
    "load_balance_hosts": ("disable", "random"),
}
# libpq compares these without regard to case.
TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
TLS_PARAMETERS = ("ssl_min_protocol_version", "ssl_max_protocol_version")
INTEGERS = (
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
)
MAX_PORT = 65_535
# The settings that say where and as whom to connect, as error messages name them.
DATABASE_URL = "LOGIN_ETL_DATABASE_URL (--database-url)"
DATABASE_SECRET = "LOGIN_ETL_DATABASE_SECRET (--database-secret)"  # noqa: S105 - its name
DATABASE_IAM_AUTH = "LOGIN_ETL_DATABASE_IAM_AUTH"
# What a secret in RDS's form gives; a URL set beside it must leave these to the secret.
LOGIN_PARAMETERS = ("host", "hostaddr", "port", "user", "password", "dbname")
# RDS takes IAM tokens only over TLS.
TLS_REQUIRED = ("require", "verify-ca", "verify-full")
_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


def problem(url: str) -> str | None:
    """What keeps libpq from using `url`, in words that quote none of it; None if nothing.

    Checked: the scheme, the URL syntax (percent-escapes, known query parameters), any `@`
    but the one that ends the user name and password, any `#`, each host and port, and the
    values libpq would refuse only when connecting. A parameter missing from the URL is read
    from its PG* environment variable, as libpq does, and then named.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        return "must be a postgresql:// URL"
    if unescaped := _unescaped_in_user_info(rest):
        return unescaped
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        # libpq's message quotes the offending part, which may be the password.
        return f"is not a valid PostgreSQL URL: check its query parameters, and {ESCAPE_HINT}"
    return _hosts_problem(params) or _at_after_host(rest) or _values_problem(params)


def _authority(rest: str) -> str:
    """User info, hosts and ports of a URL past its `scheme://`: where libpq ends them."""
    return re.split(r"[/?]", rest, maxsplit=1)[0]


def _unescaped_in_user_info(rest: str) -> str | None:
    # libpq ends the user name and password at the first '@' before any '/' or '?': a second
    # '@' there belongs to the password, and libpq would take the rest for the host name.
    if _authority(rest).count("@") > 1:
        return f"the user name or password holds an unescaped '@': {ESCAPE_HINT}"
    # libpq's URLs have no '#' fragment; one in a password cuts the URL for other parsers.
    if "#" in rest:
        return f"holds an unescaped '#': {ESCAPE_HINT}"
    return None


def _at_after_host(rest: str) -> str | None:
    # An '@' past the host most often ends a password holding a '/' or '?' (base64 holds '/'):
    # libpq ended the host there and took part of the password for the host or the port.
    if "@" in rest[len(_authority(rest)) :]:
        return f"holds an unescaped '@' after the host: {ESCAPE_HINT}"
    return None


def login_problem(url: str | None, *, secret: bool, iam_auth: bool) -> str | None:
    """What is wrong with how the settings combine the URL (None: not set, the default applies),
    the secret and IAM authentication; None if nothing. `url` has passed `problem`.

    With a secret, the secret gives the server and the login, and the URL may add only options
    (`postgresql://?sslmode=verify-full`): one value from two places would leave the reader to
    guess which wins. IAM authentication takes the host and user from the secret or the URL, and
    a token instead of any password, over TLS.
    """
    params = conninfo_to_dict(url) if url else {}
    if secret and (given := [name for name in LOGIN_PARAMETERS if params.get(name)]):
        return (
            f"{DATABASE_URL}: with {DATABASE_SECRET} set, the secret gives the server and the "
            f"login; the URL may hold only options such as postgresql://?sslmode=verify-full, "
            f"not {', '.join(given)}"
        )
    if not iam_auth:
        return None
    if not secret and not (params.get("host") and params.get("user")):
        return (
            f"{DATABASE_IAM_AUTH}: needs {DATABASE_SECRET}, or {DATABASE_URL} naming the host "
            "and the user"
        )
    if params.get("password"):
        return f"{DATABASE_IAM_AUTH}: the token is the password; take it out of {DATABASE_URL}"
    sslmode = _value(params, "sslmode")
    if sslmode and sslmode not in TLS_REQUIRED:
        return (
            f"{DATABASE_IAM_AUTH}: RDS takes IAM tokens only over TLS; {_named(params, 'sslmode')} "
            f"must be {', '.join(TLS_REQUIRED)} (require when unset)"
        )
    return None


def is_host(text: str) -> bool:
    """Whether libpq can take `text` for one host: a name, an IP address or a socket directory."""
    return _is_host(text)


def is_local_host(host: str) -> bool:
    """Whether `host` is this machine: a Unix socket directory, localhost or a loopback address,
    where TLS protects nothing."""
    if host.startswith("/") or host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_address(url: str) -> str:
    """`host:port` (comma-separated for several hosts) from a URL that `problem` accepts;
    "the database server" for any other, which might put part of a password there."""
    if problem(url) is not None:
        return "the database server"
    return params_address(conninfo_to_dict(url))


def params_address(params: Mapping[str, object]) -> str:
    """`host:port` as `server_address` gives it, from parameters whose hosts are `is_host`."""
    hosts = _split(_value(params, "host")) or _split(_value(params, "hostaddr")) or [""]
    ports = _split(_value(params, "port")) or [""]
    if len(ports) == 1:
        ports *= len(hosts)
    return ",".join(
        f"{_bracketed(host) or 'the default socket'}:{port or '5432'}"
        for host, port in zip(hosts, ports, strict=False)
    )


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("/") else host


def _hosts_problem(params: Mapping[str, object]) -> str | None:
    hosts = _split(_value(params, "host"))
    addresses = _split(_value(params, "hostaddr"))
    for host in hosts:
        if "@" in host[1:]:
            return f"a host name holds an '@': {ESCAPE_HINT}"
        if host and not _is_host(host):
            return f"a host is not a host name, an IP address or a socket directory; {ESCAPE_HINT}"
    for address in addresses:
        if address and not _is_ip(address):
            return "hostaddr must be an IP address"
    if hosts and addresses and len(hosts) != len(addresses):
        return "give as many hostaddr values as hosts"
    return _ports_problem(params, max(len(hosts), len(addresses)))


def _ports_problem(params: Mapping[str, object], hosts: int) -> str | None:
    ports = _split(_value(params, "port"))
    for port in ports:
        if port and not (_INTEGER.fullmatch(port) and 1 <= int(port) <= MAX_PORT):
            # A port that is not a number is most often part of a password split off at a '/'.
            hint = f"; {ESCAPE_HINT}" if "port" in params else ""
            return f"{_named(params, 'port')} must be a number from 1 to {MAX_PORT}{hint}"
    if len(ports) > 1 and len(ports) != hosts:
        return "give one port, or one port for each host"
    return None


def _values_problem(params: Mapping[str, object]) -> str | None:
    for name, choices in CHOICES.items():
        value = _value(params, name)
        if value and value not in choices:
            return f"{_named(params, name)} must be one of {', '.join(choices)}"
    for name in TLS_PARAMETERS:
        value = _value(params, name)
        if value and value.lower() not in (v.lower() for v in TLS_VERSIONS):
            return f"{_named(params, name)} must be one of {', '.join(TLS_VERSIONS)}"
    for name in INTEGERS:
        value = _value(params, name)
        if value and not _INTEGER.fullmatch(value):
            return f"{_named(params, name)} must be a whole number"
    return None


def _value(params: Mapping[str, object], name: str) -> str | None:
    """The parameter as libpq would see it: from the URL, else from its PG* variable."""
    if name in params:
        return str(params[name])
    envvar = _envvars().get(name)
    return os.environ.get(envvar) if envvar else None


def libpq_value(params: Mapping[str, object], name: str) -> str | None:
    """A parameter as libpq would see it: from the parameters, else from its PG* variable."""
    return _value(params, name)


def _named(params: Mapping[str, object], name: str) -> str:
    envvar = _envvars().get(name)
    return name if name in params or not envvar else f"{name} (from {envvar})"


_ENVVARS: dict[str, str] = {}


def _envvars() -> dict[str, str]:
    """Each libpq parameter's environment variable, as this libpq names them."""
    if not _ENVVARS:
        for info in pq.Conninfo.get_defaults():
            if info.envvar:
                _ENVVARS[info.keyword.decode()] = info.envvar.decode()
    return _ENVVARS


def _split(value: str | None) -> list[str]:
    return value.split(",") if value else []


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def _is_host(host: str) -> bool:
    # A leading '/' is a Unix socket directory, a leading '@' an abstract socket (Linux).
    return host.startswith(("/", "@")) or _is_ip(host) or _HOST_NAME.fullmatch(host) is not None
