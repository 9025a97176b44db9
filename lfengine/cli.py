"""Command line: a thin shell over lfengine.service (and the server for ``serve``).

lfengine describe META [options] [--json]
lfengine train META MODEL_DIR [options]
lfengine apply MODEL_DIR DATAFILE [--distribution] [--labeled]
lfengine evaluate MODEL_DIR DATAFILE [--json]
lfengine serve [--format json|msgpack|auto]      (default when stdin is not a TTY)
lfengine replay SESSION...                       (recorded protocol sessions)
lfengine demo [--workdir DIR]                    (the whole job on generated data)
lfengine gate-wrapper DATADIR                    (drop-in scripts for the GATE LF plugin)
lfengine eject META|MODEL_DIR -o FILE.py         (the built network as editable PyTorch source)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import threading
from typing import Any

from lfengine import __version__
from lfengine.eject_cli import add_eject_parser, cmd_eject
from lfengine.errors import LfEngineError, OptionError
from lfengine.options import TrainOptions

log = logging.getLogger("lfengine")

# TrainOptions fields that the command line spells differently or handles itself.
_FLAG_NAMES = {"shuffle": "no-shuffle", "model": "set"}


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainOptions field, so the CLI can never drift from the protocol's options."""
    group = parser.add_argument_group("training options (default: chosen by the heuristics)")
    for f in dataclasses.fields(TrainOptions):
        flag = "--" + _FLAG_NAMES.get(f.name, f.name.replace("_", "-"))
        if f.name == "shuffle":
            group.add_argument(
                flag,
                dest="shuffle",
                action="store_false",
                default=None,
                help="keep file order when choosing the validation set",
            )
        elif f.name == "model":
            group.add_argument(
                flag,
                dest="model",
                action="append",
                metavar="KEY=VALUE",
                default=None,
                help="override an architecture/training heuristic, e.g. --set hidden_size=200 "
                "(value parsed as JSON); repeatable",
            )
        elif f.type.startswith("bool"):
            group.add_argument(flag, dest=f.name, action="store_true", default=None)
        else:
            kind = int if f.type.startswith("int") else float if f.type.startswith("float") else str
            group.add_argument(flag, dest=f.name, type=kind, default=None)


def _options_from(args: argparse.Namespace) -> TrainOptions:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(TrainOptions):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if f.name == "model":
            value = dict(_parse_setting(item) for item in value)
        values[f.name] = value
    return TrainOptions.from_dict(values)


def _parse_setting(item: str) -> tuple[str, Any]:
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise OptionError(f"--set needs KEY=VALUE, got {item!r}")
    try:
        return key.strip(), json.loads(text)
    except json.JSONDecodeError:
        return key.strip(), text  # a bare string such as --set list_encoder=lstm


MAX_MESSAGE_MB = 4096


def _message_mb(text: str) -> int:
    """--max-message-mb: a whole number of MiB in range (argparse reports the error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of MiB, got {text!r}") from None
    if not 1 <= value <= MAX_MESSAGE_MB:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_MESSAGE_MB} MiB, got {value}")
    return value


def _add_trust_module(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-module",
        action="store_true",
        help="allow importing (running) the user module file that the model directory names; "
        "only for model directories you trust",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lfengine",
        description="Deep-learning engine for the GATE "
        "Learning Framework: build, train and apply networks from LF exports.",
    )
    parser.add_argument("--version", action="version", version=f"lfengine {__version__}")
    parser.add_argument("--debug", action="store_true", help="DEBUG logging on stderr")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("describe", help="show the network, vocabularies, labels and hyperparameters")
    p.add_argument("meta", help="LF meta file (or a model directory)")
    p.add_argument("--json", action="store_true")
    _add_trust_module(p)
    _add_train_options(p)

    p = sub.add_parser("train", help="train a model from an LF meta/data pair")
    p.add_argument("meta")
    p.add_argument("model_dir")
    _add_trust_module(p)
    _add_train_options(p)

    p = sub.add_parser("apply", help="apply a model to an LF data file; one JSON result per line")
    p.add_argument("model_dir")
    p.add_argument("data")
    p.add_argument("--labeled", action="store_true", help="lines are [features, target] as in training")
    p.add_argument("--distribution", action="store_true", help="include the full label distribution")
    _add_trust_module(p)

    p = sub.add_parser("evaluate", help="metrics of a model on a labeled LF data file")
    p.add_argument("model_dir")
    p.add_argument("data")
    p.add_argument("--json", action="store_true")
    _add_trust_module(p)

    p = sub.add_parser("serve", help="the resident engine on stdin/stdout (see protocol.md)")
    p.add_argument("--format", choices=("auto", "json", "msgpack"), default="auto")
    p.add_argument(
        "--max-message-mb",
        type=_message_mb,
        default=256,
        help=f"largest message in MiB (1-{MAX_MESSAGE_MB}; default 256)",
    )

    p = sub.add_parser("replay", help="pipe recorded sessions through a real engine and compare replies")
    p.add_argument("sessions", nargs="+")

    p = sub.add_parser("demo", help="generate LF corpora, train, apply and show the results")
    p.add_argument("--workdir", help="where to write the corpora and models (default: a temporary dir)")

    p = sub.add_parser("gate-wrapper", help="write FileJsonPyTorch/ scripts into a GATE LF data directory")
    p.add_argument("datadir")
    p.add_argument(
        "--portable",
        action="store_true",
        help="record no local paths (lfengine must then be installed in PYTHON_BIN's Python)",
    )
    add_eject_parser(sub, _add_train_options)
    sub.add_parser("gate-train", help="what FileJsonPyTorch/train.sh runs", add_help=False)
    sub.add_parser("gate-apply", help="what FileJsonPyTorch/apply.sh runs", add_help=False)
    return parser


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("gate-train", "gate-apply"):  # the old option syntax, parsed there
        _setup_logging("--debug" in argv)
        from lfengine.gate import script_main

        return script_main(argv[0], argv[1:])
    if not argv and not sys.stdin.isatty():
        argv = ["serve"]
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.debug)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _COMMANDS[args.command](args)
    except LfEngineError as exc:
        log.error("%s", exc.message)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


def _cmd_describe(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lfengine import service

    if Path(args.meta).is_dir():
        result = service.load_model(args.meta, trust_module=args.trust_module).describe()
    else:
        result = service.describe(args.meta, _options_from(args))
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(render_description(result))
    return 0


def render_description(d: dict) -> str:
    """The describe result as a person reads it."""
    lines = [
        f"task: {d['task']}" + (" (sequences)" if d.get("is_sequence") else ""),
        f"features: {d.get('features')}",
        "",
        *[f"note: {note}" for note in d.get("notes", [])],
        "architecture:",
        d["architecture"]["text"],
        "",
        "vocabularies:",
    ]
    for v in d["vocabularies"]:
        lines.append(
            f"  {v['emb_id'] or '(default)'!s:12} size {v['size']:>7}  dims {v['dims']:>4}  "
            f"mode {v['mode']}  (dims from {v['sources'].get('dims', '?')})"
        )
    if not d["vocabularies"]:
        lines.append("  (none)")
    if d.get("char_encoder"):
        lines.append(f"  characters of {d['char_encoder']['column']}: {d['char_encoder']['size']}")
    lines += [
        "",
        f"labels ({len(d['labels'])}, index order): {', '.join(d['labels'])}",
        "",
        "hyperparameters:",
    ]
    for name, h in d["hyperparameters"].items():
        lines.append(f"  {name:22} {json.dumps(h['value'])!s:24} ({h['source']})")
    return "\n".join(lines)


def _cmd_train(args: argparse.Namespace) -> int:
    from lfengine import service
    from lfengine.progress import ProgressDisplay

    options = _options_from(args)
    cancel = threading.Event()
    previous = signal.signal(
        signal.SIGINT, lambda *_: (log.warning("interrupt: stopping after this batch"), cancel.set())
    )
    try:
        with ProgressDisplay(sys.stderr) as display:
            result = service.train(
                args.meta,
                args.model_dir,
                options,
                on_progress=display.update,
                cancel=cancel,
                trust_module=args.trust_module,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    if result["stopped"] == "no-train":
        print(render_description(result["description"]))
    print(json.dumps({k: v for k, v in result.items() if k != "description"}, indent=2))
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    from lfengine import service
    from lfengine.data.reader import read_records

    model = service.load_model(args.model_dir, trust_module=args.trust_module)
    for chunk in read_records(args.data, labeled=args.labeled):
        instances = [r[0] for r in chunk] if args.labeled else chunk
        for result in model.apply(instances, distribution=args.distribution):
            sys.stdout.write(json.dumps(result, ensure_ascii=False, allow_nan=False) + "\n")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from lfengine import service
    from lfengine.metrics import format_report

    report = service.evaluate(args.model_dir, args.data, trust_module=args.trust_module)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from lfengine.server import serve

    return serve(
        sys.stdin.buffer, sys.stdout.buffer, fmt=args.format, max_message_bytes=args.max_message_mb * 2**20
    )


def _cmd_replay(args: argparse.Namespace) -> int:
    from lfengine.replay import replay_main

    return replay_main(args.sessions)


def _cmd_demo(args: argparse.Namespace) -> int:
    from lfengine.demo import run_demo

    return run_demo(args.workdir)


def _cmd_gate_wrapper(args: argparse.Namespace) -> int:
    from lfengine.gate.wrapper import write_wrapper_dir

    path = write_wrapper_dir(args.datadir, portable=args.portable)
    print(f"wrote {path}")
    return 0


_COMMANDS = {
    "describe": _cmd_describe,
    "train": _cmd_train,
    "apply": _cmd_apply,
    "evaluate": _cmd_evaluate,
    "serve": _cmd_serve,
    "replay": _cmd_replay,
    "demo": _cmd_demo,
    "gate-wrapper": _cmd_gate_wrapper,
    "eject": lambda args: cmd_eject(args, _options_from(args)),
}
