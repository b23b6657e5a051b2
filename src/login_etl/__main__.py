import sys

from login_etl.cli import main

sys.exit(main())
