"""``python -m ai_filters.cli``: the same as the ``ai-filters`` command."""

import sys

from ai_filters.cli import main

sys.exit(main())
