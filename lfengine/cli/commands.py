"""The subcommands: each is a ``Command`` (name, texts for --help, its arguments, what it runs).

To add a subcommand, write its ``arguments`` and ``run`` functions and add one entry to
``COMMANDS``; the parser, --help and dispatch pick it up from there.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfengine.cli import hints
from lfengine.cli.arguments import (
    MAX_MESSAGE_MB,
    TRUST_MODULE,
    add_flags,
    add_model_and_data,
    add_train_options,
    add_trust_module,
    flag_options,
    message_mb,
    options_from,
    set_epilog,
)
from lfengine.cli.eject import eject_arguments, run_eject
from lfengine.cli.evaluate import evaluate_arguments, run_evaluate
from lfengine.cli.reports import render_model_training
from lfengine.cli.train import run_train, train_arguments
from lfengine.console.logs import log_to_stderr
from lfengine.console.printable import printable
from lfengine.description import render_description

log = logging.getLogger("lfengine")


@dataclass(frozen=True)
class Command:
    name: str
    summary: str  # one line in `lfengine --help`
    description: str  # the top of `lfengine NAME --help`
    examples: tuple[str, ...]
    arguments: Callable[[argparse.ArgumentParser], None] | None  # None: parses its own argv
    run: Callable[[Any], int]  # argparse.Namespace, or the raw argv list when arguments is None
    epilog: Callable[[], str] | None = None  # more help after the examples


# --- describe ---------------------------------------------------------------------------------
def _describe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "meta", metavar="META_OR_MODEL_DIR", help="an LF meta file (x.meta.json), or a model directory"
    )
    p.add_argument("--json", action="store_true", help="print the description as JSON (keys: README)")
    add_trust_module(p)
    add_train_options(p, run_options=False)


def _run_describe(args: argparse.Namespace) -> int:
    from lfengine import service

    if Path(args.meta).is_dir():
        model = service.load_model(args.meta, trust_module=args.trust_module)
        result = {**model.describe(), "training": model.metadata.get("training", {})}
        result["training"] = {k: v for k, v in result["training"].items() if k != "history"}
        text = render_description(result) + "\n\n" + render_model_training(result["training"])
    else:
        hints.check_meta_argument(args.meta)
        options = options_from(args)
        result = service.describe(
            args.meta,
            options,
            trust_module=args.trust_module,
            named_modules=flag_options(args).named_modules(),
        )
        text = render_description(result)
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else printable(text))
    return 0


# --- apply ------------------------------------------------------------------------------------
def _apply_arguments(p: argparse.ArgumentParser) -> None:
    add_model_and_data(p, "an LF data file, one instance (or sequence) per line")
    labeled = "lines are [features, target] as in training (default: off)"
    distribution = (
        'add "distribution": {label: probability} for every label, in the model\'s label order '
        "(for a sequence, one such object per token) (default: off)"
    )
    add_flags(
        p,
        {
            "--labeled": {"action": "store_true", "help": labeled},
            "--distribution": {"action": "store_true", "help": distribution},
            **TRUST_MODULE,
        },
    )


def _run_apply(args: argparse.Namespace) -> int:
    from lfengine import service
    from lfengine.cli.readable import readable_result
    from lfengine.data.reader import read_records

    hints.check_model_argument(args.model_dir, args.data)
    model = service.load_model(args.model_dir, trust_module=args.trust_module)
    for chunk in read_records(args.data, labeled=args.labeled, numbered=True):
        instances = [r[0] for _, r in chunk] if args.labeled else [r for _, r in chunk]
        with hints.explaining_lines(model, args.data, chunk, labeled=args.labeled):
            results = model.apply(instances, distribution=args.distribution)
        for instance, result in zip(instances, results):
            line = readable_result(result, model.codec, instance if model.is_sequence else None)
            sys.stdout.write(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n")
    sys.stdout.flush()
    return 0


# --- plot -------------------------------------------------------------------------------------
def _plot_arguments(p: argparse.ArgumentParser) -> None:
    add_model_and_data(p, None)
    p.add_argument(
        "-o", "--output", metavar="FILE.svg", help="where to write the SVG (default: MODEL_DIR/curves.svg)"
    )


def _run_plot(args: argparse.Namespace) -> int:
    from lfengine.cli.plot import write_svg
    from lfengine.storage import store

    hints.check_model_argument(args.model_dir, None)
    training = store.read_model_json(args.model_dir)["metadata"].get("training", {})
    output = Path(args.output or Path(args.model_dir) / "curves.svg")
    points = write_svg(training, output, title=str(args.model_dir))
    print(printable(f"wrote {output} ({points} validations)"))
    return 0


# --- info -------------------------------------------------------------------------------------
def _info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the information as JSON")


def _run_info(args: argparse.Namespace) -> int:
    from lfengine.cli.reports import engine_info, render_info

    info = engine_info()
    print(json.dumps(info, indent=2) if args.json else render_info(info))
    return 0


# --- the resident engine, replays, demo, GATE -------------------------------------------------
def _serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=("auto", "json", "msgpack"),
        default="auto",
        help="message framing: json, msgpack, or auto (decided by the first byte) (default: auto)",
    )
    p.add_argument(
        "--max-message-mb",
        type=message_mb,
        default=256,
        metavar="MB",
        help=f"largest message in MiB, 1-{MAX_MESSAGE_MB} (default: 256)",
    )


def _run_serve(args: argparse.Namespace) -> int:
    from lfengine.serving.server import serve

    return serve(
        sys.stdin.buffer, sys.stdout.buffer, fmt=args.format, max_message_bytes=args.max_message_mb * 2**20
    )


def _replay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "sessions", nargs="+", metavar="SESSION", help="NAME.requests.jsonl files, or a folder of them"
    )


def _run_replay(args: argparse.Namespace) -> int:
    from lfengine.replay import replay_main

    return replay_main(args.sessions)


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workdir", metavar="DIR", help="where to write the corpora and models (default: a temporary dir)"
    )


def _run_demo(args: argparse.Namespace) -> int:
    from lfengine.demo import run_demo

    return run_demo(args.workdir)


def _gate_wrapper_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("datadir", metavar="GATE_DATA_DIR", help="the data directory of the LF training PR")
    p.add_argument(
        "--portable",
        action="store_true",
        help="record no local paths: lfengine must then be installed in PYTHON_BIN's Python (default: off)",
    )


def _run_gate_wrapper(args: argparse.Namespace) -> int:
    from lfengine.gate.wrapper import write_wrapper_dir

    print(printable(f"wrote {write_wrapper_dir(args.datadir, portable=args.portable)}"))
    return 0


def _run_gate(program: str, argv: list[str]) -> int:
    from lfengine.gate import script_main

    log_to_stderr(logging.DEBUG if "--debug" in argv else logging.INFO)
    return script_main(program, argv)


COMMANDS: tuple[Command, ...] = (
    Command(
        "describe",
        "show the network, vocabularies, labels and hyperparameters",
        "Show what training would build from an LF meta file (the data file is not read), or what a "
        "model directory holds and how it was trained: the network, vocabularies, labels and every "
        "setting the network uses with its source (heuristic, meta, option, default).",
        (
            "lfengine describe crvd.meta.json",
            "lfengine describe crvd.meta.json --set hidden_size=64 --json",
            "lfengine describe models/crvd",
        ),
        _describe_arguments,
        _run_describe,
        set_epilog,
    ),
    Command(
        "train",
        "train a model from an LF meta/data pair",
        "Train a network on an LF export (META and the .data.json next to it) into MODEL_DIR. A progress "
        "bar on a terminal (log lines otherwise), a start and an end summary; Ctrl-C stops after the "
        "current batch, keeps the best model and tells how to --resume.",
        (
            "lfengine train crvd.meta.json models/crvd",
            "lfengine train crvd.meta.json models/crvd --max-epochs 20 --set dropout=0.3",
            "lfengine train crvd.meta.json models/crvd --resume",
            "lfengine train crvd.meta.json models/again --config models/crvd",
        ),
        train_arguments,
        run_train,
        set_epilog,
    ),
    Command(
        "evaluate",
        "scores, confusion matrix and warnings of a model on a labeled LF data file",
        "Score a model on a labeled LF data file: per-label precision/recall/F1, macro/micro F1, span F1 "
        "for chunk labels, a confusion matrix, and warnings for results that cannot be trusted.",
        (
            "lfengine evaluate models/crvd test.data.json",
            "lfengine evaluate models/crvd test.data.json --json",
            "lfengine evaluate models/ner test.data.json --predictions errors.conll",
        ),
        evaluate_arguments,
        run_evaluate,
    ),
    Command(
        "apply",
        "apply a model to an LF data file; one JSON result per line",
        "Apply a model to an LF data file (- reads stdin): one JSON object per input line, with the "
        'label and its confidence; for a sequence "tokens" (each element\'s token string), "label" '
        'and "confidence" are lists, one entry per token. --distribution adds every label\'s '
        "probability by name, e.g. "
        '{"label": "g", "confidence": 0.97, "distribution": {"g": 0.97, "b": 0.03}}.',
        (
            "lfengine apply models/crvd new.data.json",
            "lfengine apply models/crvd test.data.json --labeled --distribution",
            "cat new.data.json | lfengine apply models/crvd - | head",
        ),
        _apply_arguments,
        _run_apply,
    ),
    Command(
        "plot",
        "training curves of a model as SVG",
        "Draw the training loss, the validation loss and the validation scores of a model, one point "
        "per validation, the best one marked, as an SVG file (no extra software needed).",
        ("lfengine plot models/crvd", "lfengine plot models/crvd -o crvd-curves.svg"),
        _plot_arguments,
        _run_plot,
    ),
    Command(
        "info",
        "versions, devices, threads and where models go",
        "What this installation runs on: versions of lfengine, Python, torch, numpy and msgpack, the "
        "devices torch can use, CPU threads, and where models are written.",
        ("lfengine info", "lfengine info --json"),
        _info_arguments,
        _run_info,
    ),
    Command(
        "serve",
        "the resident engine on stdin/stdout (protocol.md)",
        "Run the resident engine: requests on stdin, replies on stdout, as JSON lines or msgpack "
        "(protocol.md). The default when lfengine is started without arguments and stdin is not a terminal.",
        ("lfengine serve", "lfengine serve --format msgpack"),
        _serve_arguments,
        _run_serve,
    ),
    Command(
        "replay",
        "pipe recorded protocol sessions through a real engine and compare the replies",
        "Replay recorded protocol sessions (tests/sessions/README.md) through real engine processes.",
        ("lfengine replay tests/sessions", "lfengine replay tests/sessions/classification.requests.jsonl"),
        _replay_arguments,
        _run_replay,
    ),
    Command(
        "demo",
        "generate LF corpora, train, evaluate and apply through the engine",
        "The whole job on generated data through one resident engine process (what bin/demo runs).",
        ("lfengine demo", "lfengine demo --workdir /tmp/lf-demo"),
        _demo_arguments,
        _run_demo,
    ),
    Command(
        "gate-wrapper",
        "write FileJsonPyTorch/ scripts into a GATE LF data directory",
        "Write the drop-in FileJsonPyTorch/ train and apply scripts into the data directory of a GATE "
        "LF training PR (README: Using it from GATE).",
        ("lfengine gate-wrapper /data/gate/mypr", "lfengine gate-wrapper /data/gate/mypr --portable"),
        _gate_wrapper_arguments,
        _run_gate_wrapper,
    ),
    Command(
        "eject",
        "write the built network as editable PyTorch source",
        "Write the network built for a meta file (with the given training options) or stored in a "
        "model directory as a Python file whose class can be edited and trained with --module "
        "FILE.py:Class (docs/modules.md#eject).",
        ("lfengine eject data.meta.json -o my_network.py", "lfengine eject MODEL_DIR -o my_network.py"),
        eject_arguments,
        run_eject,
    ),
    Command(
        "gate-train",
        "what FileJsonPyTorch/train.sh runs",
        "",
        (),
        None,
        lambda argv: _run_gate("gate-train", argv),
    ),
    Command(
        "gate-apply",
        "what FileJsonPyTorch/apply.sh runs",
        "",
        (),
        None,
        lambda argv: _run_gate("gate-apply", argv),
    ),
)
