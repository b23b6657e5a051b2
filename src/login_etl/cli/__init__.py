"""The command line: a thin layer that parses arguments, builds settings, calls one use case
(`login_etl.ops`, or the runtime for `run`) and prints its result.

Exit status: 0 done, 1 an error (one line on stderr), 2 bad usage or configuration.
"""

from __future__ import annotations

import sys

from login_etl.cli import (  # noqa: F401 - register the commands
    archive,
    audit,
    bench,
    demo,
    keys,
    prune,
    quarantine,
    queue,
    rekey,
    reveal,
    run,
)
from login_etl.cli.app import app, err
from login_etl.errors import ConfigError, LoginEtlError
from login_etl.logs import configure_logging

EXIT_ERROR = 1
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `login-etl` script; returns the exit status.

    Typer handles usage errors itself (exit 2 with the usage line); login-etl's own errors are
    shown here as one line, never a traceback.
    """
    # Before any command runs: every command logs WARNING and up, and other libraries (botocore
    # logs KMS's data keys at DEBUG) never below WARNING. `run` and `migrate` then set their level.
    configure_logging("WARNING")
    try:
        app(args=argv, prog_name="login-etl")
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_ERROR)
    except ConfigError as error:
        err.print(f"login-etl: {error}", markup=False)
        return EXIT_USAGE
    except LoginEtlError as error:
        err.print(f"login-etl: error: {error}", markup=False)
        return EXIT_ERROR
    return 0


__all__ = ["app", "main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
