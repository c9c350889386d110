"""`python -m mxconform.cli`."""

import sys

from mxconform.cli import main

sys.exit(main())
