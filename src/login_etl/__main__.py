"""`python -m login_etl`: the `login-etl` command, for where its script is not on PATH."""

import sys

from login_etl.cli import main

sys.exit(main())
