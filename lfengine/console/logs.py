"""Where log records go on the console: stderr, always (stdout carries protocol messages only).

Every entry point (the command line, the GATE drop-in commands, a distributed worker) sets up
its console logging here; the first set-up in a process wins, as with ``logging.basicConfig``.
"""

from __future__ import annotations

import logging
import sys

from lfengine.console.printable import printable

#: The command line's format: time of day, level, message.
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
CLOCK = "%H:%M:%S"
#: With the logger's name: the GATE console, where lfengine's lines mix with GATE's own.
NAMED_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_stderr(
    level: int | None,
    fmt: str = CONSOLE_FORMAT,
    datefmt: str | None = CLOCK,
    console_level: int = logging.NOTSET,
) -> None:
    """Log to stderr, unless the root logger already has a handler.

    ``level``: the root logger's level (None: leave it). ``console_level``: the handler's own
    threshold, for when training later lowers the root level to fill train.log and the
    console must stay as quiet as asked.
    """
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.setFormatter(PrintableFormatter(fmt, datefmt))
    logging.basicConfig(level=level, handlers=[console])


class PrintableFormatter(logging.Formatter):
    """Console records with terminal control characters escaped (messages quote labels, names
    and paths from files; lfengine.console.printable)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))
