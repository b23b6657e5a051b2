"""`login-etl queue create-dlq`: give the queue a dead-letter queue, so that a message that keeps
failing is set aside instead of being received forever."""

from __future__ import annotations

from typing import Annotated

import typer

from login_etl.adapters.sqs import DEFAULT_MAX_RECEIVE_COUNT, SqsSource, ensure_dead_letter_queue
from login_etl.cli import options
from login_etl.cli.app import app, out
from login_etl.config import load_settings

queue_app = typer.Typer(help="Manage the SQS queue.", no_args_is_help=True)
app.add_typer(queue_app, name="queue")


@queue_app.command("create-dlq")
def create_dlq(
    name: Annotated[
        str | None, typer.Option(help="DLQ name.", show_default="<queue name>-dlq")
    ] = None,
    max_receive_count: Annotated[
        int, typer.Option(min=1, max=1000, help="Receives before a message moves to the DLQ.")
    ] = DEFAULT_MAX_RECEIVE_COUNT,
    queue_url: options.QueueUrl = None,
    sqs_protocol: options.SqsProtocol = None,
) -> None:
    """Create the queue's dead-letter queue and set its redrive policy (idempotent)."""
    settings = load_settings(queue_url=queue_url, sqs_protocol=sqs_protocol)
    dlq_url = ensure_dead_letter_queue(
        SqsSource.from_settings(settings), name=name, max_receive_count=max_receive_count
    )
    out.print(
        f"Dead-letter queue {dlq_url}: messages received {max_receive_count} times without "
        f"being deleted move there from {settings.queue_url}.",
        markup=False,
    )
