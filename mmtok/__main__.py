"""`python -m mmtok ...` (and `accelerate launch -m mmtok ...`) runs the command line."""

import sys

from mmtok.cli import main

sys.exit(main())
