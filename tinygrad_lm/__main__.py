"""`python -m tinygrad_lm ...` runs the command line (see cli.py)."""
import sys

from .run.cli import main

sys.exit(main())
