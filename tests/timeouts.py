"""Subprocess and read deadlines for a loaded machine: every test scales its limits by one factor.

``LFENGINE_TEST_TIMEOUT_FACTOR`` (default 3) multiplies every deadline the tests set, and the
recorded-session replayer's too (lfengine/replay/runner.py reads the same variable). The limits
only catch hangs: a slow but working machine must never fail a test, so raise the factor
rather than the limits when several test runs share a few cores.
"""

from __future__ import annotations

from lfengine.replay.runner import timeout_factor


def scaled(seconds: float) -> float:
    """``seconds`` times the machine's timeout factor."""
    return seconds * timeout_factor()
