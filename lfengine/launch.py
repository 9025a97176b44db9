"""The process entry point (console script and ``python -m lfengine``): termination signals are
held from the first moment, before the command line's imports load torch (seconds), so that a
SIGTERM sent to a just-started engine ends it cleanly instead of killing it mid-import."""

from __future__ import annotations

from lfengine.runtime.process import hold_termination_signals


def main() -> int:
    hold_termination_signals()
    from lfengine.cli import main as cli_main

    return cli_main()
