"""``python -m carbench``: the ``bench`` command."""

import sys

from carbench.cli.app import main

sys.exit(main())
