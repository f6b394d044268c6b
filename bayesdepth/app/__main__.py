"""``python -m bayesdepth.app``: the ``bayesdepth`` command line."""

import sys

from .cli import main

sys.exit(main())
