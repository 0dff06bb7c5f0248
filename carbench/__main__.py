"""``python -m carbench``: the ``bench`` command line."""

import sys

from bench.cli.app import main

sys.exit(main())
