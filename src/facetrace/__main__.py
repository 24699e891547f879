"""``python -m facetrace``."""

import sys

from facetrace.cli import main

sys.exit(main())
