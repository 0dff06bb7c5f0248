"""``python -m carbench``: the ``bench`` command line."""

import sys

from carbench.cli.app import main

sys.exit(main())
