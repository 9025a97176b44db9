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
from lfengine.paths import path_problem

ES_METRICS = ("auto", "loss", "accuracy", "f1")
#: torch.set_num_threads with far more threads than any machine has crashes the process.
MAX_THREADS = 1024
MAX_COUNT = 2**31 - 1  # epochs, batch sizes, schedules: beyond this a value is a typo, not a plan
#: Integer options: (minimum, maximum).
INT_RANGES: dict[str, tuple[int, int]] = {
    "seed": (0, 2**63 - 1),
    "batch_size": (1, MAX_COUNT),
    "max_epochs": (1, MAX_COUNT),
    "es_patience": (0, MAX_COUNT),
    "threads": (1, MAX_THREADS),
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


@dataclass
class TrainOptions:
    """Everything a user can set for one training run."""

    seed: int = 1  # same seed, same model (on CPU)
    valsize: float | None = None  # >1: count, <1: fraction, 0: none; None: heuristic
    valfile: str | None = None  # separate LF data file for validation
    batch_size: int | None = None
    max_epochs: int | None = None
    learning_rate: float | None = None
    es_patience: int | None = None
    es_metric: str = "auto"  # loss | accuracy | f1 | auto (f1 for chunk labels, else accuracy)
    device: str = "auto"
    threads: int | None = None
    resume: bool = False
    stop_file: str | None = None  # default: STOP next to the meta file
    embs: str | None = None  # old syntax: embid:dims:train:minfreq:file[,...]
    maxlens: str | None = None  # old syntax: attrnr:maxlen:shorten[,...]
    ngram_layer: str | None = None  # cnn | lstm
    module: str | None = None  # predefined module name, or path/to/file.py:ClassName
    model: dict[str, Any] = field(default_factory=dict)  # overrides of architecture heuristics
    skip_bad_lines: bool = False  # skip malformed training lines (counted in the log) instead of failing
    shuffle: bool = True  # shuffle before the validation split
    validate_every_epochs: int = 1
    validate_every_batches: int | None = None
    validate_every_instances: int | None = None
    report_every_batches: int | None = None
    report_every_instances: int | None = None
    no_train: bool = False  # build and describe, do not train

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.es_metric not in ES_METRICS:
            raise OptionError(f"es_metric must be one of {', '.join(ES_METRICS)}, got {self.es_metric!r}")
        if self.ngram_layer is not None and self.ngram_layer not in NGRAM_LAYERS:
            raise OptionError(f"ngram_layer must be 'cnn' or 'lstm', got {self.ngram_layer!r}")
        if self.device not in DEVICES and not re.fullmatch(r"cuda:\d{1,4}", self.device):
            raise OptionError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
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


#: Annotation prefix -> (accepted JSON value types, how the message names them).
_VALUE_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "bool": ((bool,), "true or false"),
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "str": ((str,), "a string"),
    "dict": ((dict,), "an object"),
}


def _coerce(name: str, annotation: str, value: Any) -> Any:
    """Check a JSON value against the field's annotation (kept as a string by `annotations`)."""
    if value is None:
        if "None" in annotation:
            return None
        raise OptionError(f"option {name} must not be null")
    for prefix, (types, words) in _VALUE_TYPES.items():
        if annotation.startswith(prefix):
            if not isinstance(value, types) or (isinstance(value, bool) and prefix != "bool"):
                raise OptionError(f"option {name} must be {words}, got {value!r}")
            if prefix != "float":
                return value
            try:
                return float(value)
            except OverflowError:  # an integer beyond the float range
                raise OptionError(
                    f"option {name} must be a finite number, got an integer too large for one"
                ) from None
    return value
