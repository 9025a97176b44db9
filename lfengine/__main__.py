"""`python -m lfengine` is the same as the `lfengine` console script."""

import sys

from lfengine.cli import main

sys.exit(main())
