"""Fault tests against the real local servers: after each fault every valid message is loaded
exactly once, every invalid one rejected once, and the queue ends empty."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from login_etl.demo.data import generate_bodies
from login_etl.ports import Backlog
from tests.support import count, start_worker, wait_for_log


def assert_exactly_once(database_url: str, valid: int, invalid: int) -> None:
    with psycopg.connect(database_url) as conn:
        assert count(conn, "user_logins") == valid
        assert count(conn, "login_etl.rejected_messages") == invalid
        assert count(conn, "login_etl.processed_messages") == valid + invalid
        # every generated message has its own user_id: no row twice
        assert conn.execute(
            "SELECT count(*) FROM (SELECT user_id FROM user_logins GROUP BY 1 HAVING count(*) > 1) d"
        ).fetchone() == (0,)


def test_a_worker_killed_mid_batch_and_restarted_loses_and_doubles_nothing(
    cli: Any, send: Callable[[list[str]], int], backlog: Callable[[], Backlog], database_url: str
) -> None:
    send(generate_bodies(400, malformed=8))
    env = cli.env | {
        "LOGIN_ETL_BATCH_SIZE": "25",
        "LOGIN_ETL_BATCH_WAIT_MS": "20",
        "LOGIN_ETL_VISIBILITY_TIMEOUT": "2",
    }
    worker = start_worker(env)
    wait_for_log(worker, "batch 3:")
    worker.send_signal(signal.SIGKILL)  # no chance to finish, release or delete anything
    worker.wait(30)
    with psycopg.connect(database_url) as conn:
        assert 0 < count(conn, "login_etl.processed_messages") < 408, "killed mid-stream"

    time.sleep(2.5)  # what the dead worker held becomes visible again
    again = cli(
        "run", "--until-empty", **{k: v for k, v in env.items() if k.startswith("LOGIN_ETL_")}
    )
    assert again.returncode == 0, again.stderr
    assert backlog().empty
    assert_exactly_once(database_url, 392, 8)


class Cuttable:
    """A TCP proxy in front of the SQS server whose link can be cut: while cut, connections
    are refused and open ones dropped, as when an endpoint restarts or a network blips."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self._up.clear()
        for conn in self._open:
            conn.close()
        self._open.clear()

    def restore(self) -> None:
        self._up.set()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            if not self._up.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self._target)
            self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.close()


def test_sqs_briefly_unavailable_is_waited_out(
    cli: Any,
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    database_url: str,
    moto: Any,
    queue_url: str,
) -> None:
    send(generate_bodies(300, malformed=5))
    proxy = Cuttable(int(moto.endpoint.rsplit(":", 1)[1]))
    proxied = queue_url.replace(moto.endpoint, f"http://127.0.0.1:{proxy.port}")
    env = cli.env | {
        "LOGIN_ETL_QUEUE_URL": proxied,
        "LOGIN_ETL_BATCH_SIZE": "20",
        "LOGIN_ETL_BATCH_WAIT_MS": "20",
    }
    worker = start_worker(env, "--until-empty")
    wait_for_log(worker, "batch 2:")
    proxy.cut()
    time.sleep(3)
    proxy.restore()
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert "Done:" in out
    assert "failed" in err, "the outage was seen and retried"
    assert backlog().empty
    assert_exactly_once(database_url, 295, 5)
