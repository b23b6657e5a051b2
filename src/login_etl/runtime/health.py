"""The worker's HTTP endpoints on LOGIN_ETL_METRICS_PORT: /metrics, /healthz, /readyz.

- /healthz: 200 while the worker loop runs (liveness: restart me if this fails);
- /readyz: 200 when SQS and PostgreSQL both answer, 503 naming which does not (readiness);
- /metrics: Prometheus text format.

The readiness probe's answer is cached for a few seconds, so a scraper or a kubelet polling
often does not multiply calls to SQS and PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from login_etl.errors import ConfigError, LoginEtlError
from login_etl.runtime.metrics import PrometheusMetrics

log = logging.getLogger(__name__)

READY_CACHE_S = 5.0

Check = Callable[[], None]  # raises when the dependency does not answer


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes every few seconds would drown the logs


class HealthServer:
    """Serves the three endpoints from a daemon thread."""

    def __init__(
        self,
        port: int,
        metrics: PrometheusMetrics,
        checks: dict[str, Check],
        host: str = "0.0.0.0",  # noqa: S104 - probes come from outside the pod
    ) -> None:
        self.alive = threading.Event()
        self._checks = checks
        self._metrics_app = make_wsgi_app(metrics.registry)
        self._ready: tuple[float, list[str]] = (0.0, [])
        self._lock = threading.Lock()
        try:
            self._server = make_server(
                host, port, self._app, ThreadingWSGIServer, handler_class=_QuietHandler
            )
        except OSError as err:  # in use, or below 1024 without the privilege
            raise ConfigError(
                f"LOGIN_ETL_METRICS_PORT (--metrics-port): cannot serve on port {port}: "
                f"{err.strerror or type(err).__name__}"
            ) from None
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    def start(self) -> None:
        self.alive.set()
        self._thread.start()
        log.info("serving /metrics, /healthz and /readyz on port %d", self.port)

    def close(self) -> None:
        self.alive.clear()
        self._server.shutdown()
        self._server.server_close()

    def failing(self) -> list[str]:
        """Names of the dependencies that do not answer now (cached READY_CACHE_S)."""
        with self._lock:
            checked_at, failing = self._ready
            if time.monotonic() - checked_at < READY_CACHE_S:
                return failing
            failing = []
            for name, check in self._checks.items():
                try:
                    check()
                except (LoginEtlError, OSError) as err:
                    log.warning("readiness: %s does not answer: %s", name, err)
                    failing.append(name)
            self._ready = (time.monotonic(), failing)
            return failing

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            ok = self.alive.is_set()
            return _text(start_response, 200 if ok else 503, "ok" if ok else "stopped")
        if path == "/readyz":
            failing = self.failing()
            if failing:
                return _text(start_response, 503, "not ready: " + ", ".join(failing))
            return _text(start_response, 200, "ready")
        return _text(start_response, 404, "not found")


def _text(start_response: Callable[..., Any], status: int, body: str) -> list[bytes]:
    reasons = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}
    start_response(f"{status} {reasons[status]}", [("Content-Type", "text/plain; charset=utf-8")])
    return [body.encode() + b"\n"]
