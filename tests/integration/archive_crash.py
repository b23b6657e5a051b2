"""Test-only entry for the kill -9 tests: run `archive` or `restore` (the ops functions, settings
from the environment as the CLI reads them) with a checkpoint that sends this process SIGKILL
when the run reaches the named point.

    python archive_crash.py archive POINT URI BEFORE
    python archive_crash.py restore POINT URI

It exits 0 if the run never reaches POINT (so a test expecting the kill fails).
"""

from __future__ import annotations

import os
import signal
import sys

from login_etl.config import load_settings
from login_etl.ops.archive import archive_before, parse_before
from login_etl.ops.restore import restore_archive


def main(args: list[str]) -> int:
    command, point, uri, *rest = args

    def checkpoint(name: str) -> None:
        if name == point:
            os.kill(os.getpid(), signal.SIGKILL)

    if command == "archive":
        archive_before(load_settings(), parse_before(rest[0]), uri, checkpoint=checkpoint)
    else:
        restore_archive(load_settings(), uri, checkpoint=checkpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
