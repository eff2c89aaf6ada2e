"""``python -m coursetools.grading`` (``make grade``)."""

import sys

from .cli import main

sys.exit(main())
