"""Training options: one dataclass filled by the command line, the protocol and the GATE wrapper.

``None`` means "let the heuristics decide" (lfengine/builder/heuristics.py); the value actually
used, and where it came from, is shown by ``describe`` and stored with the model.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from lfengine.errors import OptionError
from lfengine.files.paths import path_problem

ES_METRICS = ("auto", "loss", "accuracy", "f1")
#: torch.set_num_threads with far more threads than any machine has crashes the process.
MAX_THREADS = 1024
MAX_WORKERS = 256  # local training processes (--workers); more nodes join through torchrun
MAX_COUNT = 2**31 - 1  # epochs, batch sizes, schedules: beyond this a value is a typo, not a plan
#: Integer options: (minimum, maximum).
INT_RANGES: dict[str, tuple[int, int]] = {
    "seed": (0, 2**63 - 1),
    "batch_size": (1, MAX_COUNT),
    "max_epochs": (1, MAX_COUNT),
    "es_patience": (0, MAX_COUNT),
    "threads": (1, MAX_THREADS),
    "workers": (1, MAX_WORKERS),
    "validate_every_epochs": (1, MAX_COUNT),
    "validate_every_batches": (1, MAX_COUNT),
    "validate_every_instances": (1, MAX_COUNT),
    "report_every_batches": (1, MAX_COUNT),
    "report_every_instances": (1, MAX_COUNT),
}
#: Options that name files.
PATH_OPTIONS = ("valfile", "stop_file", "module")
NGRAM_LAYERS = ("cnn", "lstm")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
VALSPLITS = ("random", "tail")


#: The validation share when neither valsize nor valfile is given: 10 % of the training file.
DEFAULT_VALSIZE = 0.1


def _opt(default: Any, help: str) -> Any:
    """A field with its one-line help, shown by ``lfengine train --help``."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainOptions:
    """Everything a user can set for one training run."""

    seed: int = _opt(1, "random seed: the same seed gives the same model (on the CPU)")
    valsize: float | None = _opt(
        None,
        "validation set: above 1 a count, below 1 a fraction, 0 none; "
        f"default {DEFAULT_VALSIZE} ({DEFAULT_VALSIZE * 100:.0f} %)",
    )
    valfile: str | None = _opt(None, "a separate LF data file to validate on (instead of --valsize)")
    batch_size: int | None = _opt(None, "training items per update; default: about 32 updates per epoch")
    max_epochs: int | None = _opt(None, "at most this many epochs; default 100 below 2,000 items, else 50")
    learning_rate: float | None = _opt(
        None, "AdamW's learning rate; default 2e-3 below 5,000 items, else 1e-3"
    )
    es_patience: int | None = _opt(
        None,
        "stop after this many validations without improvement; "
        "default 8 below 500 items, 5 below 5,000, else 3",
    )
    es_metric: str = _opt(
        "auto",
        "what decides the best model; auto: span F1 for chunk labels, accuracy otherwise, mse for regression",
    )
    device: str = _opt("auto", "where to train: auto (a GPU when there is one), cpu, cuda or cuda:N")
    threads: int | None = _opt(None, "CPU threads for torch; default: torch's choice")
    workers: int = _opt(
        1, "data-parallel training processes on this machine (torch.distributed); under torchrun: its ranks"
    )
    precision: str = _opt("auto", "auto, fp32, bf16 or fp16: mixed precision on CUDA; the CPU trains in fp32")
    resume: bool = _opt(False, "continue an interrupted training from its checkpoint in MODEL_DIR")
    stop_file: str | None = _opt(
        None, "training stops when this file appears; default STOP next to the meta file"
    )
    embs: str | None = _opt(
        None, "embedding settings per emb_id, the old syntax EMBID:DIMS:TRAIN:MINFREQ:FILE[,...]"
    )
    maxlens: str | None = _opt(
        None, "length limits of token-list columns, the old syntax ATTR:MAXLEN:SHORTEN[,...]"
    )
    ngram_layer: str | None = _opt(None, "encoder of token-list (N-gram) columns; default cnn")
    module: str | None = _opt(
        None, "network: a predefined module (TextCnn, BiLstmCrfTagger, MlpClassifier, ...) or file.py:Class"
    )
    model: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "override an architecture or training setting (value parsed as JSON); repeatable"},
    )
    skip_bad_lines: bool = _opt(
        False, "skip malformed training lines (counted in the log) instead of failing"
    )
    shuffle: bool = _opt(
        True,
        "validate on the file's last items, as --valsplit tail does (default: a shuffled sample, seeded)",
    )
    valsplit: str | None = _opt(
        None, "which items validate: random (default) or tail (the file's last part, like new documents)"
    )
    validate_every_epochs: int = _opt(1, "validate every N epochs")
    validate_every_batches: int | None = _opt(None, "also validate every N batches")
    validate_every_instances: int | None = _opt(None, "also validate every N training instances")
    report_every_batches: int | None = _opt(None, "log the training loss every N batches")
    report_every_instances: int | None = _opt(None, "log the training loss every N instances")
    no_train: bool = _opt(False, "build and describe the network, do not train")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.es_metric not in ES_METRICS:
            raise OptionError(f"es_metric must be one of {', '.join(ES_METRICS)}, got {self.es_metric!r}")
        if self.ngram_layer is not None and self.ngram_layer not in NGRAM_LAYERS:
            raise OptionError(f"ngram_layer must be 'cnn' or 'lstm', got {self.ngram_layer!r}")
        if self.device not in DEVICES and not re.fullmatch(r"cuda:\d{1,4}", self.device):
            raise OptionError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise OptionError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.valsplit is not None and self.valsplit not in VALSPLITS:
            raise OptionError(f"valsplit must be one of {', '.join(VALSPLITS)}, got {self.valsplit!r}")
        if self.valsize is not None and not (math.isfinite(self.valsize) and 0 <= self.valsize <= MAX_COUNT):
            raise OptionError(f"valsize must be a number between 0 and {MAX_COUNT}, got {self.valsize}")
        for name, (low, high) in INT_RANGES.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                raise OptionError(f"{name} must be between {low} and {high}, got {value}")
        if self.learning_rate is not None and not (
            math.isfinite(self.learning_rate) and self.learning_rate > 0
        ):
            raise OptionError(f"learning_rate must be a finite number > 0, got {self.learning_rate}")
        for name in PATH_OPTIONS:
            value = getattr(self, name)
            problem = path_problem(value) if isinstance(value, str) else None
            if problem is not None:
                raise OptionError(f"option {name} cannot name a file: {problem}")
        if not isinstance(self.model, dict):
            raise OptionError("model must be a mapping of architecture settings")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrainOptions:
        """Build from a JSON object; unknown keys and wrong types are errors, never ignored."""
        values = dict(values or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise OptionError(
                f"unknown training option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        for name, value in values.items():
            values[name] = _coerce(name, known[name].type, value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def named_modules(self) -> tuple[str, ...]:
        """The modules these options name (``module``, and ``module`` among the model settings)."""
        names = (self.module, self.model.get("module"))
        return tuple(name for name in names if isinstance(name, str))


#: Annotation prefix -> (accepted JSON value types, how the message names them).
_VALUE_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "bool": ((bool,), "true or false"),
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "str": ((str,), "a string"),
    "dict": ((dict,), "an object"),
}


def check_json_type(label: str, annotation: str, value: Any) -> Any:
    """Check a JSON value against a field's annotation (kept as a string by ``annotations``).

    The one type rule of options and model settings: null only where the annotation allows
    None, no booleans for numbers, ints accepted for floats. ``label`` names the value in the
    message ("option seed", "model setting hidden_size"). Returns the value unconverted.
    """
    if value is None:
        if "None" in annotation:
            return None
        raise OptionError(f"{label} must not be null")
    for prefix, (types, words) in _VALUE_TYPES.items():
        if annotation.startswith(prefix):
            if not isinstance(value, types) or (isinstance(value, bool) and prefix != "bool"):
                raise OptionError(f"{label} must be {words}, got {value!r}")
            return value
    return value


def _coerce(name: str, annotation: str, value: Any) -> Any:
    """An option's JSON value, type-checked; numbers for float fields become floats."""
    value = check_json_type(f"option {name}", annotation, value)
    if value is None or not annotation.startswith("float"):
        return value
    try:
        return float(value)
    except OverflowError:  # an integer beyond the float range
        raise OptionError(
            f"option {name} must be a finite number, got an integer too large for one"
        ) from None
