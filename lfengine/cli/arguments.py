"""Argument definitions of the command line: the parser, help texts, did-you-mean, --config.

Every training flag is generated from a run option of lfengine/settings.py, and every ``--set``
key from a model setting with its heuristic's rule, so the command line, the protocol's options
and ``--help`` cannot drift apart.
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path
from typing import Any, NoReturn

from lfengine.builder.heuristics import RULES
from lfengine.errors import OptionError
from lfengine.files import jsontext
from lfengine.files.paths import MAX_CONFIG_BYTES, MAX_MODEL_JSON_BYTES, read_regular_bytes
from lfengine.options import TrainOptions
from lfengine.settings import MODEL_SETTINGS, OPTIONS, RUN, Setting, model_setting_of

#: The old wrapper's spellings (gate-plugin.md §9) that differ from ours.
OLD_SPELLINGS = {
    **{f"--{s.old}": s.cli_flag for s in OPTIONS if s.old and f"--{s.old}" != s.cli_flag},
    "--cuda": "--device cuda",
}


def _help(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help with %


def rule_text(name: str) -> str:
    """The first clause of a model setting's heuristic rule: what it gets when unset."""
    return " ".join((RULES[name].__doc__ or "").split()).split(": ")[0].split(". ")[0].rstrip(".")


def option_help(setting: Setting) -> str:
    """A flag's help: the setting's line, its choices and its default (or its rule)."""
    text = setting.help
    if setting.choices:
        text += f"; one of {', '.join(setting.choices)}"
    model_setting = model_setting_of(setting)
    if model_setting is not None:
        text += f"; default: {rule_text(model_setting)}"
    elif setting.unset is not None:
        text += f" (default: {setting.unset})"
    elif "default" not in text and setting.json_type != "dict":
        default = setting.default
        shown = "off" if default is False else "none" if default is None else default
        text += f" (default: {shown})"
    return _help(text)


def setting_lines() -> list[str]:
    """One line per ``--set`` key: what it is, and the rule that picks it when unset."""
    return [f"  {s.name:23} {s.help}; default: {rule_text(s.name)}" for s in MODEL_SETTINGS]


def set_epilog() -> str:
    return "\n".join(
        ["settings for --set KEY=VALUE (describe shows the value and source of each):", *setting_lines()]
    )


def add_train_options(parser: argparse.ArgumentParser, *, run_options: bool = True) -> None:
    """One flag per run option, so the CLI can never drift from the protocol's options; without
    ``run_options``, the options that shape the network and its settings only (describe and
    eject lack those that only say how a training runs)."""
    config_help = (
        "read options from a JSON object with the protocol's option names, or from a model "
        "directory (or its model.json) to train again with its settings; flags given here win"
    )
    add_flags(parser, {"--config": {"metavar": "FILE", "help": config_help}})
    group = parser.add_argument_group("training options (unset: chosen by the heuristics)")
    for s in OPTIONS:
        if s.scope == RUN and not run_options:
            continue
        if s.json_type == "dict":
            group.add_argument(
                s.cli_flag,
                dest=s.name,
                action="append",
                metavar="KEY=VALUE",
                default=None,
                help=option_help(s) + ", e.g. --set hidden_size=200; keys listed below",
            )
        elif s.json_type == "bool":
            action = "store_false" if s.default is True else "store_true"  # --no-shuffle
            group.add_argument(s.cli_flag, dest=s.name, action=action, default=None, help=option_help(s))
        else:
            group.add_argument(
                s.cli_flag,
                dest=s.name,
                type={"int": int, "float": float}.get(s.json_type, str),
                default=None,
                choices=(s.choices or None) if not s.pattern else None,  # device also takes cuda:N
                metavar=s.name.upper(),
                help=option_help(s),
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


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The run options this command line's flags give (--set parsed), --config left out."""
    values = {}
    for s in OPTIONS:
        value = getattr(args, s.name, None)
        if value is not None:
            values[s.name] = dict(map(parse_setting, value)) if s.json_type == "dict" else value
    return values


def flag_options(args: argparse.Namespace) -> TrainOptions:
    """The options the flags give: the modules they name (``named_modules``) are the ones the
    command may import without --trust-module. A --config file's module is not among them: it
    may be a model directory's stored options, which are data."""
    return TrainOptions.from_dict(flag_values(args))


def options_from(args: argparse.Namespace) -> TrainOptions:
    values: dict[str, Any] = read_config(args.config) if getattr(args, "config", None) else {}
    flags = flag_values(args)
    if "model" in flags:
        flags["model"] = {**values.get("model", {}), **flags["model"]}
    return TrainOptions.from_dict({**values, **flags})


def parse_setting(item: str) -> tuple[str, Any]:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OptionError(f"--set needs KEY=VALUE, got {item!r}")
    known = [s.name for s in MODEL_SETTINGS]
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
