"""``python -m lfengine.replay [--record] SESSION...``"""

import sys

from lfengine.replay.runner import main

sys.exit(main())
