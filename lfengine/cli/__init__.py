"""Command line: a thin shell over lfengine.service (and the server for ``serve``).

``lfengine --help`` lists the subcommands; each one's ``--help`` has its options, defaults and
examples. The subcommands are the ``Command`` entries of lfengine/cli/commands.py: adding one is
one function and one entry there. This module parses, sets up logging and turns failures into
exit codes: 1 with a message (and a hint when there is one) for a user error, 2 for a usage
error, 130 after Ctrl-C, 141 quietly when the reader of stdout went away (``| head``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from lfengine.cli.arguments import Parser, global_flags
from lfengine.cli.commands import COMMANDS
from lfengine.console.logs import log_to_stderr
from lfengine.description import render_description
from lfengine.errors import LfEngineError
from lfengine.files.runlog import version_line
from lfengine.runtime.process import release_held_signals

log = logging.getLogger("lfengine")

__all__ = ["build_parser", "main", "render_description"]


def build_parser() -> Parser:
    parser = Parser(
        prog="lfengine",
        description="Deep-learning engine for the GATE Learning Framework: build, train and apply "
        "networks from LF exports.\nWithout a subcommand and with stdin not a terminal, it serves "
        "the protocol (lfengine serve).",
        epilog="lfengine COMMAND --help shows each command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=version_line())
    global_flags(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    common = argparse.ArgumentParser(add_help=False)
    global_flags(common, defaults=False)
    parser.commands = {}  # type: ignore[attr-defined]
    for command in COMMANDS:
        epilog = "\n".join(["examples:", *(f"  {e}" for e in command.examples)]) if command.examples else None
        p = sub.add_parser(
            command.name,
            help=command.summary,
            description=command.description,
            epilog=epilog,
            parents=[common] if command.arguments is not None else [],
            add_help=command.arguments is not None,
        )
        if command.arguments is not None:
            command.arguments(p)
        if command.epilog is not None:
            p.epilog = "\n\n".join(filter(None, [p.epilog, command.epilog()]))
        parser.commands[command.name] = p  # type: ignore[attr-defined]
    return parser


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose or args.debug else logging.WARNING if args.quiet else logging.INFO
    # The level is the console's own: training lowers the root logger's level to INFO so that
    # train.log gets every record, and -q must still keep them off the terminal.
    log_to_stderr(level, console_level=level)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    by_name = {c.name: c for c in COMMANDS}
    if argv and argv[0] in by_name and by_name[argv[0]].arguments is None:  # own syntax, parsed there
        release_held_signals()
        return by_name[argv[0]].run(argv[1:])
    if not argv and not sys.stdin.isatty():
        argv = ["serve"]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        target = parser.commands.get(args.command, parser)  # type: ignore[attr-defined]
        target.error("unrecognized arguments: " + " ".join(extra))
    setup_logging(args)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command != "serve":  # serve takes a held termination signal as its own (process.py)
        release_held_signals()
    try:
        return by_name[args.command].run(args)
    except LfEngineError as exc:
        log.error("%s", exc.message)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) has what it wanted: exit quietly, and keep Python's own
        # flush at exit from failing on the closed pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # the system refused a file operation: a one-line error, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        log.error("%s%s (check the path, its permissions and the free space)", where, exc.strerror or exc)
        log.debug("where it failed", exc_info=True)
        return 1
