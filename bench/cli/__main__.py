"""``python -m bench.cli``: the ``bench`` command."""

import sys

from bench.cli.app import main

sys.exit(main())
