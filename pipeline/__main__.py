"""``python -m pipeline`` is the same command as ``redox-pipeline``."""

import sys

from pipeline.cli import main

sys.exit(main())
