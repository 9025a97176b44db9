"""`python -m lfengine` is the same as the `lfengine` console script."""

import sys

from lfengine.launch import main

sys.exit(main())
