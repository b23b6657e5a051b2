"""`login-etl demo`: the whole service on one machine, to see it work (`login_etl.demo`)."""

from __future__ import annotations

from login_etl.cli import options
from login_etl.cli.app import app
from login_etl.config import load_settings


@app.command()
def demo(sqs_protocol: options.SqsProtocol = None) -> None:
    """Run everything locally (an SQS server and a PostgreSQL), load 100 generated messages,
    and show what an analyst sees. Needs the `demo` extra."""
    from login_etl.demo.show import run_demo  # noqa: PLC0415 - the demo extra is optional

    run_demo(sqs_protocol=load_settings(sqs_protocol=sqs_protocol).sqs_protocol)
