"""``lfengine train``: a start block, the progress bar, an end block (or ``--json``), and Ctrl-C
that stops cleanly, keeps the best model, exits 130 and says how to resume."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import sys
import threading
from typing import Any

from lfengine.cli import hints
from lfengine.cli.arguments import add_train_options, add_trust_module, flag_options, options_from
from lfengine.cli.reports import end_block, start_block
from lfengine.console.printable import printable
from lfengine.console.progress import ProgressDisplay, fit_lines, terminal_columns
from lfengine.description import render_description

log = logging.getLogger("lfengine")


def train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "meta", metavar="META", help="the LF meta file (x.meta.json); its data file sits next to it"
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="where to write the model (created if missing)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of the end summary")
    add_trust_module(p)
    add_train_options(p)


def for_terminal(text: str, stream: Any) -> str:
    """Blocks wrapped to the terminal's width (continuations under the values), when on one,
    with terminal control characters from labels and names escaped."""
    text = printable(text)
    return fit_lines(text, terminal_columns(stream) - 1, " " * 12) if stream.isatty() else text


def resume_command(args: argparse.Namespace) -> str:
    """The command that continues this run. The model directory stores the training options;
    where to run (--device, --threads) and --trust-module come from the command line only, and
    a resumed run with other threads would not continue the same way."""
    words = ["lfengine", "train", args.meta, args.model_dir, "--resume"]
    if args.device is not None:
        words += ["--device", args.device]
    if args.threads is not None:
        words += ["--threads", str(args.threads)]
    if args.trust_module:
        words.append("--trust-module")
    return " ".join(shlex.quote(word) for word in words)


def run_train(args: argparse.Namespace) -> int:
    from lfengine import service
    from lfengine.cli.plot import sparkline  # its SVG escaping loads urllib: not for --help
    from lfengine.storage import store

    hints.check_meta_argument(args.meta, args.model_dir)
    options = options_from(args)
    blocks = sys.stderr if args.json else sys.stdout  # with --json, stdout holds the JSON only
    cancel = threading.Event()

    def interrupted(*_: Any) -> None:
        display.hide()  # a stopped training's bar would only stand still under the messages
        log.warning("interrupted: stopping after this batch, keeping the best model (Ctrl-C again aborts)")
        cancel.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def started(facts: dict[str, Any]) -> None:
        print(for_terminal(start_block(facts), blocks), file=blocks, flush=True)

    display = ProgressDisplay(sys.stderr)
    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        with display:
            result = service.train(
                args.meta,
                args.model_dir,
                options,
                on_progress=display.update,
                cancel=cancel,
                on_start=started,
                trust_module=args.trust_module,
                named_modules=flag_options(args).named_modules(),
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    if result["stopped"] == "no-train":
        description = result.pop("description")
        print(json.dumps(description, indent=2) if args.json else printable(render_description(description)))
        return 0
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        history = store.read_model_json(args.model_dir)["metadata"]["training"].get("history", [])
        spark = sparkline(history) if sys.stdout.isatty() else None
        print(for_terminal(end_block(result, spark), sys.stdout))
    if result["stopped"] in ("cancelled", "stop-file"):
        print(printable(f"to continue this training: {resume_command(args)}"), file=sys.stderr)
    if result["stopped"] == "cancelled":
        return 130
    return 0
