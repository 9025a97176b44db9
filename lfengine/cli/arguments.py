"""Argument definitions of the command line: the parser, help texts, did-you-mean, --config.

Every training flag is generated from a TrainOptions field (its help is the field's metadata),
and every ``--set`` key from a ModelConfig field with its heuristic's rule, so the command line,
the protocol's options and ``--help`` cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
from pathlib import Path
from typing import Any, NoReturn

from lfengine.builder.config import SETTING_HELP, ModelConfig
from lfengine.builder.heuristics import RULES
from lfengine.errors import OptionError
from lfengine.files import jsontext
from lfengine.files.paths import MAX_CONFIG_BYTES, MAX_MODEL_JSON_BYTES, read_regular_bytes
from lfengine.options import DEVICES, ES_METRICS, NGRAM_LAYERS, TrainOptions

#: TrainOptions fields that the command line spells differently (or handles itself).
FLAG_NAMES = {"shuffle": "no-shuffle", "model": "set"}
CHOICES = {"es_metric": ES_METRICS, "ngram_layer": NGRAM_LAYERS, "device": DEVICES}

#: The old wrapper's spellings (gate-plugin.md §9) that differ from ours.
OLD_SPELLINGS = {
    "--batchsize": "--batch-size",
    "--maxepochs": "--max-epochs",
    "--learningrate": "--learning-rate",
    "--es_patience": "--es-patience",
    "--es_metric": "--es-metric",
    "--ngram_layer": "--ngram-layer",
    "--stopfile": "--stop-file",
    "--noshuffle": "--no-shuffle",
    "--notrain": "--no-train",
    "--cuda": "--device cuda",
    "--valeveryepochs": "--validate-every-epochs",
    "--valeverybatches": "--validate-every-batches",
    "--valeveryinstances": "--validate-every-instances",
    "--repeverybatches": "--report-every-batches",
    "--repeveryinstances": "--report-every-instances",
}


def flag_of(name: str) -> str:
    return "--" + FLAG_NAMES.get(name, name.replace("_", "-"))


def _help(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help with %


def option_help(f: dataclasses.Field) -> str:
    """A flag's help: the field's line, its choices and its default."""
    text = f.metadata.get("help", "")
    if f.name in CHOICES:
        text += f"; one of {', '.join(CHOICES[f.name])}"
    if "default" not in text and f.name not in ("model", "shuffle"):
        default = f.default
        shown = "off" if default is False else "none" if default is None else default
        text += f" (default: {shown})"
    return _help(text)


def setting_lines() -> list[str]:
    """One line per ``--set`` key: what it is, and the rule that picks it when unset."""
    lines = []
    for f in dataclasses.fields(ModelConfig):
        rule = (RULES[f.name].__doc__ or "").strip().split(": ")[0].split(". ")[0].rstrip(".")
        lines.append(f"  {f.name:23} {SETTING_HELP[f.name]}; default: {rule}")
    return lines


def set_epilog() -> str:
    return "\n".join(
        ["settings for --set KEY=VALUE (describe shows the value and source of each):", *setting_lines()]
    )


#: TrainOptions fields that only say how a training runs (where, how fast, when to stop or
#: report): nothing that describe shows or eject writes depends on them, so those commands lack them.
RUN_ONLY = frozenset(
    {
        "device",
        "threads",
        "workers",
        "precision",
        "resume",
        "stop_file",
        "skip_bad_lines",
        "validate_every_epochs",
        "validate_every_batches",
        "validate_every_instances",
        "report_every_batches",
        "report_every_instances",
        "no_train",
    }
)


def add_train_options(parser: argparse.ArgumentParser, *, run_options: bool = True) -> None:
    """One flag per TrainOptions field, so the CLI can never drift from the protocol's options;
    without ``run_options``, the fields that shape the network and its settings only."""
    config_help = (
        "read options from a JSON object with the protocol's option names, or from a model "
        "directory (or its model.json) to train again with its settings; flags given here win"
    )
    add_flags(parser, {"--config": {"metavar": "FILE", "help": config_help}})
    group = parser.add_argument_group("training options (unset: chosen by the heuristics)")
    for f in dataclasses.fields(TrainOptions):
        if f.name in RUN_ONLY and not run_options:
            continue
        flag = flag_of(f.name)
        if f.name == "shuffle":
            group.add_argument(flag, dest="shuffle", action="store_false", default=None, help=option_help(f))
        elif f.name == "model":
            group.add_argument(
                flag,
                dest="model",
                action="append",
                metavar="KEY=VALUE",
                default=None,
                help=option_help(f) + ", e.g. --set hidden_size=200; keys listed below",
            )
        elif str(f.type).startswith("bool"):
            group.add_argument(flag, dest=f.name, action="store_true", default=None, help=option_help(f))
        else:
            kind = int if str(f.type).startswith("int") else float if str(f.type).startswith("float") else str
            choices = CHOICES.get(f.name) if f.name != "device" else None  # device also takes cuda:N
            group.add_argument(
                flag,
                dest=f.name,
                type=kind,
                default=None,
                choices=choices,
                metavar=f.name.upper(),
                help=option_help(f),
            )


def read_config(path: str) -> dict[str, Any]:
    """Options from ``--config``: a JSON object of option names, or a model's stored options."""
    file = Path(path)
    if file.is_dir():
        file = file / "model.json"
    # An options file is small; a model's model.json holds its vocabularies too.
    limit = MAX_MODEL_JSON_BYTES if file.name == "model.json" else MAX_CONFIG_BYTES
    try:
        document = jsontext.loads(read_regular_bytes(file, limit).decode("utf-8"))
    except FileNotFoundError:
        raise OptionError(f"--config {path}: file not found") from None
    except OSError as exc:
        raise OptionError(f"--config {path}: cannot read it: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OptionError(f"--config {path}: not a readable JSON file ({exc})") from None
    if not isinstance(document, dict):
        raise OptionError(f"--config {path}: expected a JSON object of options")
    stored = document.get("metadata", {}).get("training", {}).get("options")
    if isinstance(stored, dict):  # a model.json: train again with the same settings
        return {k: v for k, v in stored.items() if k not in ("resume", "no_train")}
    return document


def flag_modules(args: argparse.Namespace) -> list[str]:
    """The user modules this command line names itself (--module, --set module=...): the ones
    it may import without --trust-module. A --config file's module is not among them: it may
    be a model directory's stored options, which are data."""
    names = [getattr(args, "module", None)]
    settings = map(parse_setting, getattr(args, "model", None) or [])
    names += [value for key, value in settings if key == "module"]
    return [name for name in names if isinstance(name, str)]


def options_from(args: argparse.Namespace) -> TrainOptions:
    values: dict[str, Any] = read_config(args.config) if getattr(args, "config", None) else {}
    for f in dataclasses.fields(TrainOptions):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if f.name == "model":
            value = {**values.get("model", {}), **dict(parse_setting(item) for item in value)}
        values[f.name] = value
    return TrainOptions.from_dict(values)


def parse_setting(item: str) -> tuple[str, Any]:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OptionError(f"--set needs KEY=VALUE, got {item!r}")
    known = [f.name for f in dataclasses.fields(ModelConfig)]
    if key not in known:
        raise OptionError(f"--set {key}: unknown setting{did_you_mean(key, known)}; see --help for the keys")
    try:
        return key, json.loads(text)
    except json.JSONDecodeError:
        return key, text  # a bare string such as --set list_encoder=lstm


def did_you_mean(word: str, choices: list[str]) -> str:
    if word in OLD_SPELLINGS:
        return f" (the old wrapper's spelling: did you mean {OLD_SPELLINGS[word]}?)"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


class Parser(argparse.ArgumentParser):
    """argparse with examples kept as written and a suggestion for a mistyped option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            options = [s for a in self._actions for s in a.option_strings]
            hints = [
                f"{word}{did_you_mean(word.split('=')[0], options)}"
                for word in message.split(":", 1)[1].split()
                if word.startswith("-")
            ]
            message = "unrecognized arguments: " + ", ".join(hints or [message.split(":", 1)[1].strip()])
        self.exit(2, f"{self.prog}: error: {message}\n({self.prog} --help shows the options)\n")


MAX_MESSAGE_MB = 4096


def message_mb(text: str) -> int:
    """--max-message-mb: a whole number of MiB in range (argparse reports the error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of MiB, got {text!r}") from None
    if not 1 <= value <= MAX_MESSAGE_MB:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_MESSAGE_MB} MiB, got {value}")
    return value


def add_model_and_data(parser: argparse.ArgumentParser, data_help: str | None) -> None:
    """MODEL_DIR, and (unless ``data_help`` is None) the DATA file that may be - for stdin."""
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a directory written by lfengine train")
    if data_help is not None:
        parser.add_argument("data", metavar="DATA", help=f"{data_help}; - reads stdin")


def add_flags(parser: argparse.ArgumentParser, flags: dict[str, dict[str, Any]]) -> None:
    """Declare flags from a table, flag -> ``add_argument`` keywords, in the table's order."""
    for flag, keywords in flags.items():
        parser.add_argument(flag, **keywords)


#: The flag of every command that loads a model directory.
TRUST_MODULE = {
    "--trust-module": {
        "action": "store_true",
        "help": "allow importing (running) the user module file that the model directory names; "
        "only for model directories you trust (default: off)",
    }
}


def add_trust_module(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, TRUST_MODULE)


def global_flags(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """-q/-v/--debug, accepted before and after the subcommand."""
    suppress = {} if defaults else {"default": argparse.SUPPRESS}
    group = parser.add_argument_group("output")
    group.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors on stderr", **suppress
    )
    group.add_argument("-v", "--verbose", action="store_true", help="DEBUG log records on stderr", **suppress)
    group.add_argument("--debug", action="store_true", help="the same as --verbose", **suppress)
