"""`python -m l2h` runs the CLI."""

import sys

from l2h.cli import main

sys.exit(main())
