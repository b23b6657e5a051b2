"""Where and as whom to connect: a URL, a Secrets Manager secret in RDS's form, or RDS IAM.

A secret is read when the first connection is opened and cached; it is read again when the
server refuses the password (`Credentials.refresh`, called by `connection.connect`), so a
rotation by Secrets Manager's RDS rotation needs no restart. With IAM authentication each new
connection signs a fresh token (`rds.generate_db_auth_token`: local signing, no AWS call) and
uses it as the password, over TLS. The parameters are handed to libpq as one conninfo string
made by psycopg's `make_conninfo` (keyword arguments, quoted by psycopg), never on a command
line, and no repr, log line or error message holds the password: errors name the secret and the
field, never a value.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from login_etl.adapters.aws_clients import aws_client
from login_etl.adapters.aws_errors import classify
from login_etl.adapters.secrets import SecretStore
from login_etl.config import Settings, dburl
from login_etl.config.secretref import SecretRef, parse_secret_ref
from login_etl.errors import ConfigError, SecretError, SinkUnavailable

DEFAULT_PORT = 5432
# How long a login refused with nothing new in the secret is waited out (`refusal_is_transient`).
ROTATION_GRACE_S = 300.0
DEFAULT_DBNAME = "postgres"  # RDS's rotation functions take this when the secret has no dbname
ENGINES = ("postgres", "aurora-postgresql")
# my-db.abc123.eu-west-1.rds.amazonaws.com (and .amazonaws.com.cn): the region is in the name.
_RDS_HOST = re.compile(r"\.([a-z]{2}(?:-[a-z]+)+-\d)\.rds\.amazonaws\.com(?:\.cn)?$")


@dataclass(frozen=True, slots=True)
class Login:
    """The server and login a secret gives (RDS's form); the password never prints."""

    host: str
    port: int
    user: str
    dbname: str
    password: str | None = field(default=None, repr=False)


_FORM = "the RDS form {engine, host, port, username, password, dbname}"


def parse_login(text: str, ref: SecretRef, *, need_password: bool = True) -> Login:
    """A Login from a secret's text in RDS's JSON form: engine, host, port, username, password,
    dbname (engine, port and dbname optional; password too with IAM authentication). SecretError
    names the secret and the field, never a value."""
    where = f"{ref.setting}: secret {ref}"
    try:
        data = json.loads(text)
    except ValueError:
        raise SecretError(f"{where}: is not JSON; expected {_FORM}") from None
    if not isinstance(data, dict):
        raise SecretError(f"{where}: is not a JSON object; expected {_FORM}")
    engine = _text(data, "engine", where)
    if engine is not None and engine not in ENGINES:
        raise SecretError(f"{where}: 'engine' must be {' or '.join(ENGINES)}")
    port = data.get("port", DEFAULT_PORT)
    # RDS writes the port as a number; AWS's own examples show it as a string.
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= dburl.MAX_PORT:
        raise SecretError(f"{where}: 'port' must be a number from 1 to {dburl.MAX_PORT}")
    host = _required(data, "host", where)
    if "," in host or not dburl.is_host(host):
        raise SecretError(f"{where}: 'host' must be one host name or IP address")
    return Login(
        host=host,
        port=port,
        user=_required(data, "username", where),
        dbname=_text(data, "dbname", where) or DEFAULT_DBNAME,
        password=_required(data, "password", where)
        if need_password
        else _text(data, "password", where),
    )


def _text(data: dict[str, Any], name: str, where: str) -> str | None:
    value = data.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise SecretError(f"{where}: {name!r} must be a non-empty string")
    return value


def _required(data: dict[str, Any], name: str, where: str) -> str:
    value = _text(data, name, where)
    if value is None:
        raise SecretError(f"{where}: has no {name!r}; expected {_FORM}")
    return value


class IamTokens:
    """RDS IAM authentication tokens (15 minutes valid, asked for at each connection)."""

    def __init__(self, client: Any, region: str) -> None:
        self._client = client
        self.region = region

    @classmethod
    def for_host(cls, host: str, fallback_region: str | None) -> IamTokens:
        """Tokens for `host`, signed for the region in its RDS name (else `fallback_region`, else
        boto3's own region lookup)."""
        match = _RDS_HOST.search(host)
        client = aws_client("rds", match.group(1) if match else fallback_region)
        return cls(client, str(client.meta.region_name))

    def token(self, host: str, port: int, user: str) -> str:
        try:
            return str(
                self._client.generate_db_auth_token(
                    DBHostname=host, Port=port, DBUsername=user, Region=self.region
                )
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
            if classify(err) == "no_credentials":
                raise ConfigError(
                    f"{dburl.DATABASE_IAM_AUTH}: no AWS credentials to sign a database token"
                ) from None
            raise SinkUnavailable(
                f"{dburl.DATABASE_IAM_AUTH}: could not sign a database token ({type(err).__name__})"
            ) from None


class Credentials:
    """The connection parameters for each new connection, and where they come from.

    `url`: the URL's parameters (all of them without a secret; only options beside one).
    `secret`: the RDS-form secret that gives the server and the login, read once and cached.
    `iam`: sign a token per connection instead of using a password.
    Safe to share between threads (the sink, the ledger keeper and /readyz share one).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        secret: SecretStore | None = None,
        iam: bool = False,
        iam_tokens: IamTokens | None = None,
    ) -> None:
        self._url = url
        self._secret = secret
        self._iam = iam
        self._tokens = iam_tokens
        self._login: Login | None = None
        self._lock = threading.Lock()
        self._connected_once = False
        self._refused_since: float | None = None

    def __repr__(self) -> str:
        source = f"secret {self._secret.ref}" if self._secret else "URL"
        return f"Credentials({source}{', IAM' if self._iam else ''})"

    @property
    def setting(self) -> str:
        """The setting to name when libpq refuses a parameter."""
        return self._secret.ref.setting if self._secret else dburl.DATABASE_URL

    @property
    def where(self) -> str:
        """`host:port` for messages, without the login."""
        if self._secret:
            login = self._login
            if login is None:
                return f"the server in secret {self._secret.ref}"
            return dburl.params_address({"host": login.host, "port": login.port})
        return dburl.server_address(self._url) if self._url else "the database server"

    def conninfo(self) -> str:
        """The libpq connection string for a new connection (holds the password: never log it).
        psycopg.Error if libpq cannot parse the URL; SecretError/SecretUnavailable from the
        secret."""
        return self.attempt()[0]

    def attempt(self) -> tuple[str, Login | None]:
        """The connection string, and the login from the secret it uses (None without one): what
        to hand `refresh` if the server refuses it."""
        if self._secret is None and not self._iam:
            return self._url or "", None
        params: dict[str, Any] = conninfo_to_dict(self._url) if self._url else {}
        login = self._cached() if self._secret else None
        if login is not None:
            params.update(host=login.host, port=login.port, user=login.user, dbname=login.dbname)
            # A password from a secret store travels encrypted to any host but this one's, unless
            # the URL's options say otherwise (sslmode=disable for a server without TLS).
            if not dburl.libpq_value(params, "sslmode") and not dburl.is_local_host(login.host):
                params["sslmode"] = "require"
            if not self._iam:
                params["password"] = login.password
        if self._iam:
            # PGSSLMODE too: a sslmode written here would outrank the environment's.
            params["sslmode"] = dburl.libpq_value(params, "sslmode") or "require"
            params["password"] = self._iam_tokens(params).token(
                str(params["host"]), int(params.get("port") or DEFAULT_PORT), str(params["user"])
            )
        return make_conninfo("", **params), login

    def refresh(self, tried: Login | None) -> bool:
        """After the server refused `tried`: True if another login is worth one more try.

        Another thread may have moved on already (the cache no longer holds `tried`): that
        login is tried. Else the secret is read again; when its current version still holds
        `tried`, a rotation may be between its setSecret (the database has the new password)
        and its finishSecret (the secret says so), and the version staged AWSPENDING is the
        one to try, as AWS advises clients. A stale pending version costs one refused try.
        """
        secret = self._secret
        if secret is None or tried is None:
            return False
        with self._lock:
            if self._login is not None and self._login != tried:
                return True
            self._login = self._read()
            if self._login != tried:
                return True
            text = secret.read_pending()
            if text is None:
                return False
            pending = parse_login(text, secret.ref, need_password=not self._iam)
            if pending == tried:
                return False
            self._login = pending
            return True

    def connected(self) -> None:
        """A connection opened: from now on a refusal is taken for a rotation under way."""
        self._connected_once = True
        self._refused_since = None

    def refusal_is_transient(self, now: float) -> bool:
        """Whether a login refused with nothing new in the secret is worth waiting out: only
        after these credentials have worked (a wrong secret at start-up is an operator's to
        fix), and for at most ROTATION_GRACE_S from the first such refusal, the time a rotation
        by hand (password in the database first, then in the secret) may take."""
        if self._secret is None or not self._connected_once:
            return False
        with self._lock:
            if self._refused_since is None:
                self._refused_since = now
            return now - self._refused_since < ROTATION_GRACE_S

    def _cached(self) -> Login:
        with self._lock:
            if self._login is None:
                self._login = self._read()
            return self._login

    def _read(self) -> Login:
        secret = self._secret
        if secret is None:  # only called with a secret
            raise TypeError("no secret to read")
        return parse_login(secret.read(), secret.ref, need_password=not self._iam)

    def _iam_tokens(self, params: dict[str, Any]) -> IamTokens:
        if self._tokens is None:
            region = self._secret.ref.region if self._secret else None
            self._tokens = IamTokens.for_host(str(params["host"]), region)
        return self._tokens


def credentials(settings: Settings) -> Credentials:
    """The credentials the settings describe (checked by Settings; the secret is read later)."""
    url = settings.database_url.get_secret_value()
    if settings.database_secret is None:
        return Credentials(url, iam=settings.database_iam_auth)
    ref = parse_secret_ref(settings.database_secret, dburl.DATABASE_SECRET)
    # Beside a secret, the URL counts only when it was set (its options); not the default one.
    options = url if "database_url" in settings.model_fields_set else None
    return Credentials(options, secret=SecretStore(ref), iam=settings.database_iam_auth)


__all__ = ["Credentials", "IamTokens", "Login", "credentials", "parse_login"]
