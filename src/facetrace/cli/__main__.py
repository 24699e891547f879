"""``python -m facetrace.cli``."""

import sys

from facetrace.cli import main

sys.exit(main())
