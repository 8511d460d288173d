"""`python -m pipeline.sandbox`: see command.py."""

import sys

from .command import main

sys.exit(main())
