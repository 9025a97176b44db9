"""The old wrapper's training and application options, mapped onto lfengine.

Every option of gate-plugin.md §9 is accepted. Each one is either honoured (mapped onto a
``TrainOptions`` field or a setting of the GATE commands) or, where lfengine has nothing that
corresponds, reported in a warning that names the option and says why; none is ignored
silently. Options the user leaves out take lfengine's defaults, not the old ones: the old
defaults were partly defects (random seed, off-by-one validation schedule), and the heuristics
choose batch size and epochs per data set.

``--seed``: unset means lfengine's fixed default seed, so a run is reproducible. An explicit
``--seed 0`` keeps its old meaning, "a random seed": one is drawn and logged so that the run can
be repeated. A negative seed ("do not seed" in the old wrapper) is treated the same way, because
lfengine always seeds its generators.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from lfengine.errors import OptionError
from lfengine.gate.cmdline import (
    CONFIG_FILE,
    SAVE_CONFIG_FILE,
    CommandLine,
    OptionSpec,
    parse_command_line,
    write_config_file,
)
from lfengine.options import TrainOptions
from lfengine.settings import BY_NAME, OPTIONS, Setting

_COMMON = (
    OptionSpec(CONFIG_FILE, True, "PATH", "read settings from a 'name = value' file (command line wins)"),
    OptionSpec(SAVE_CONFIG_FILE, True, "PATH", "write the effective settings to a file"),
)

TRAIN_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "embs", True, "ID:DIMS:TRAIN:MINFREQ:FILE[,...]", "override the EMBEDDINGS settings per emb_id"
    ),
    OptionSpec("maxlens", True, "ATTR:MAXLEN:SHORTEN[,...]", "length limits for N columns"),
    OptionSpec("valsize", True, "N", "validation size: >1 count, <1 fraction, 0 none"),
    OptionSpec("valfile", True, "PATH", "separate validation file in LF format (relative to cwd)"),
    OptionSpec("batchsize", True, "N", "training batch size (default: heuristic)"),
    OptionSpec("maxepochs", True, "N", "maximum number of epochs (default: heuristic)"),
    OptionSpec("learningrate", True, "LR", "learning rate (default: heuristic)"),
    OptionSpec("module", True, "NAME", "predefined module, or path/to/file.py:ClassName"),
    OptionSpec("wrapper", True, "CLASS", "old wrapper class selection (ignored, with a warning)"),
    OptionSpec("es_patience", True, "N", "early stopping: validations without improvement"),
    OptionSpec(
        "es_metric", True, "METRIC", "early-stopping metric: " + " | ".join(BY_NAME["es_metric"].choices)
    ),
    OptionSpec("seed", True, "N", "random seed; 0 or negative: draw a random seed (default: fixed)"),
    OptionSpec("cuda", True, "BOOL", "true: train on the GPU (error if none), false: on the CPU"),
    OptionSpec("resume", False, "", "continue training the existing model"),
    OptionSpec("notrain", False, "", "show the network that would be built, do not train"),
    OptionSpec("nocreate", False, "", "exit at once after checking the options"),
    OptionSpec("ngram_layer", True, "cnn|lstm", "encoder for N (token list) columns"),
    OptionSpec("stopfile", True, "PATH", "training stops when this file appears (default: STOP by the meta)"),
    OptionSpec("valeveryepochs", True, "N", "validate every N epochs"),
    OptionSpec("valeverybatches", True, "N", "validate every N batches"),
    OptionSpec("valeveryinstances", True, "N", "validate every N training instances"),
    OptionSpec("repeveryinstances", True, "N", "report progress every N instances"),
    OptionSpec("repeverybatches", True, "N", "report progress every N batches"),
    OptionSpec("noshuffle", False, "", "keep file order when choosing the validation split"),
    OptionSpec("debug", False, "", "debug logging"),
    OptionSpec("elmo", True, "DIR", "ELMo model directory (not supported, warning)"),
    *_COMMON,
)

APPLY_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec("cuda", True, "BOOL", "apply on the GPU (apply.sh passes --cuda False; a later value wins)"),
    OptionSpec("metafile", True, "PATH", "meta file of the data directory, checked against the model"),
    OptionSpec("labeled", False, "", "requests are [features, target]; accuracy on stderr at EOF"),
    OptionSpec("noret", False, "", "write no replies (only with --labeled; never under GATE)"),
    OptionSpec("logevery", True, "N", "log 'Processed: N' every N requests (0: never)"),
    OptionSpec("trust_module", False, "", "allow importing the user module file the model names"),
    *_COMMON,
)

WARN_WRAPPER = (
    "--wrapper {value} is ignored: lfengine has a single model wrapper (the old back-end ignored it too)"
)
WARN_ELMO = (
    "--elmo {value} is ignored: ELMo modules are not supported by lfengine "
    "(use --module with a token-list encoder, or pretrained embeddings via --embs)"
)
WARN_VALSIZE = (
    "--valsize {value} is ignored because --valfile is given: the whole data file is used for training"
)
WARN_NORET = "--noret without --labeled writes no replies at all: never use it under GATE, which would hang"


@dataclass
class GateTrainSettings:
    """What ``train.sh`` asked for, in lfengine terms."""

    meta_path: str
    model_prefix: str
    options: TrainOptions
    cuda: bool | None = None  # None: let lfengine decide
    no_create: bool = False
    no_train: bool = False
    debug: bool = False
    help: bool = False
    save_config_file: str | None = None
    values: dict[str, str | bool] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class GateApplySettings:
    """What ``apply.sh`` asked for."""

    model_prefix: str
    meta_path: str | None = None
    cuda: bool = False
    labeled: bool = False
    noret: bool = False
    logevery: int = 0
    trust_module: bool = False  # import a user module file named in the model directory
    help: bool = False
    save_config_file: str | None = None
    values: dict[str, str | bool] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def parse_bool(name: str, text: str) -> bool:
    """The old str2bool spellings, case-insensitive."""
    value = text.strip().lower()
    if value in ("yes", "true", "y", "t", "1"):
        return True
    if value in ("no", "false", "n", "f", "0"):
        return False
    raise OptionError(f"--{name} expects a boolean (yes/true/y/t/1 or no/false/n/f/0), got {text!r}")


def parse_int(name: str, text: str, *, minimum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise OptionError(f"--{name} expects a whole number, got {text!r}") from None
    if minimum is not None and value < minimum:
        raise OptionError(f"--{name} must be at least {minimum}, got {value}")
    return value


def parse_float(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"--{name} expects a number, got {text!r}") from None
    if not math.isfinite(value):
        raise OptionError(f"--{name} must be a finite number, got {text!r}")
    return value


def parse_valsize(text: str) -> float:
    value = parse_float("valsize", text)
    if value < 0:
        raise OptionError(f"--valsize must be >= 0, got {text!r}")
    if value == 1:
        raise OptionError("--valsize 1 is ambiguous: give a count of at least 2, or a fraction below 1")
    if value > 1 and not value.is_integer():
        raise OptionError(f"--valsize above 1 is a count of instances and must be whole, got {text!r}")
    return value


def _absolute(path: str, cwd: str) -> str:
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def _choice(name: str, text: str, allowed: tuple[str, ...]) -> str:
    if text not in allowed:
        raise OptionError(f"--{name} must be one of {', '.join(allowed)}, got {text!r}")
    return text


def _positive(value: float, name: str) -> float:
    if value <= 0:
        raise OptionError(f"--{name} must be > 0, got {value}")
    return value


def _converter(setting: Setting) -> Callable[[str], object]:
    """The raw text of a run option's old spelling, checked as the setting's declaration says."""
    name = setting.old
    if setting.choices:
        return lambda text: _choice(name, text, setting.choices)
    if setting.json_type == "int":
        return lambda text: parse_int(name, text, minimum=setting.low)
    if setting.json_type == "float":  # learningrate: a rate > 0
        return lambda text: _positive(parse_float(name, text), name)
    return str


#: Old options that train_settings_from handles itself: they need the working directory, touch
#: several fields, have their own rule (seed, valsize) or are flags.
_OWN_HANDLING = frozenset({"valfile", "valsize", "stopfile", "seed", "resume", "notrain", "noshuffle"})
# Old option name -> (TrainOptions field, converter of the raw text).
_TRAIN_FIELDS: dict[str, tuple[str, Callable[[str], object]]] = {
    s.old: (s.name, _converter(s)) for s in OPTIONS if s.old and s.old not in _OWN_HANDLING
}


def train_settings_from(argv: list[str], cwd: str | None = None) -> GateTrainSettings:
    """Parse ``train.sh``'s arguments (meta file, model prefix, options); raises OptionError."""
    cwd = cwd or os.getcwd()
    line = parse_command_line(argv, TRAIN_SPECS)
    if line.help:
        return GateTrainSettings("", "", TrainOptions(), help=True)
    meta, prefix = _positionals(line, ("METAFILE", "MODELPREFIX"))
    values = line.values
    fields: dict[str, object] = {}
    for name, (field_name, convert) in _TRAIN_FIELDS.items():
        if name in values:
            fields[field_name] = convert(str(values[name]))
    settings = GateTrainSettings(_absolute(meta, cwd), _absolute(prefix, cwd), TrainOptions(), values=values)
    if "valfile" in values:
        fields["valfile"] = _absolute(str(values["valfile"]), cwd)
    if "valsize" in values:
        valsize = parse_valsize(str(values["valsize"]))
        if "valfile" in values:
            settings.warnings.append(WARN_VALSIZE.format(value=values["valsize"]))
        else:
            fields["valsize"] = valsize
    if "stopfile" in values:
        fields["stop_file"] = _absolute(str(values["stopfile"]), cwd)
    if "seed" in values:
        seed = parse_int("seed", str(values["seed"]))
        if seed <= 0:
            drawn = secrets.randbelow(2**31 - 1) + 1
            settings.notes.append(
                f"--seed {seed}: drew the random seed {drawn} (pass --seed {drawn} to repeat)"
            )
            seed = drawn
        fields["seed"] = seed
    if "cuda" in values:
        settings.cuda = parse_bool("cuda", str(values["cuda"]))
        fields["device"] = "cuda" if settings.cuda else "cpu"
    fields["resume"] = "resume" in values
    fields["no_train"] = settings.no_train = "notrain" in values
    fields["shuffle"] = "noshuffle" not in values
    settings.no_create = "nocreate" in values
    settings.debug = "debug" in values
    if "wrapper" in values:
        settings.warnings.append(WARN_WRAPPER.format(value=values["wrapper"]))
    if "elmo" in values:
        settings.warnings.append(WARN_ELMO.format(value=values["elmo"]))
    settings.save_config_file = _optional_path(values, SAVE_CONFIG_FILE, cwd)
    settings.options = TrainOptions(**fields)
    return settings


def apply_settings_from(argv: list[str], cwd: str | None = None) -> GateApplySettings:
    """Parse ``apply.sh``'s arguments (model prefix, options); raises OptionError."""
    cwd = cwd or os.getcwd()
    line = parse_command_line(argv, APPLY_SPECS)
    if line.help:
        return GateApplySettings("", help=True)
    (prefix,) = _positionals(line, ("MODELPREFIX",))
    values = line.values
    settings = GateApplySettings(_absolute(prefix, cwd), values=values)
    settings.meta_path = _optional_path(values, "metafile", cwd)
    if "cuda" in values:
        settings.cuda = parse_bool("cuda", str(values["cuda"]))
    settings.labeled = "labeled" in values
    settings.noret = "noret" in values
    settings.trust_module = "trust_module" in values
    if settings.noret and not settings.labeled:
        settings.warnings.append(WARN_NORET)
    if "logevery" in values:
        settings.logevery = parse_int("logevery", str(values["logevery"]), minimum=0)
    settings.save_config_file = _optional_path(values, SAVE_CONFIG_FILE, cwd)
    return settings


def _positionals(line: CommandLine, names: tuple[str, ...]) -> tuple[str, ...]:
    if len(line.positionals) != len(names):
        got = " ".join(line.positionals) or "none"
        raise OptionError(f"expected the arguments {' '.join(names)} before the options, got: {got}")
    return tuple(line.positionals)


def _optional_path(values: dict[str, str | bool], name: str, cwd: str) -> str | None:
    value = values.get(name)
    return _absolute(str(value), cwd) if isinstance(value, str) else None


def save_settings(settings: GateTrainSettings | GateApplySettings, program: str) -> None:
    """Honour --save_config_file: write the settings given on the command line or in a file."""
    if settings.save_config_file:
        write_config_file(settings.save_config_file, settings.values, program=program)
