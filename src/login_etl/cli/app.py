"""The Typer application objects and the consoles every command prints to."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="login-etl",
    help="Move login events from SQS into PostgreSQL, masking ip and device_id on the way.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
keys_app = typer.Typer(
    help="Create, wrap, list, rotate, check, disable and enable keys.", no_args_is_help=True
)
quarantine_app = typer.Typer(help="Inspect and replay rejected messages.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(quarantine_app, name="quarantine")

out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
