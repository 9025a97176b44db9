"""Training options: one dataclass filled by the command line, the protocol and the GATE wrapper.

``None`` means "let the heuristics decide" (lfengine/builder/heuristics.py); the value actually
used, and where it came from, is shown by ``describe`` and stored with the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lfengine.errors import OptionError

ES_METRICS = ("auto", "loss", "accuracy", "f1")
NGRAM_LAYERS = ("cnn", "lstm")
DEVICES = ("auto", "cpu", "cuda")
VALSPLITS = ("random", "tail")


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
    valsplit: str | None = None  # random | tail (the file's last part); None: the default
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
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise OptionError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.valsplit is not None and self.valsplit not in VALSPLITS:
            raise OptionError(f"valsplit must be one of {', '.join(VALSPLITS)}, got {self.valsplit!r}")
        if self.valsize is not None and self.valsize < 0:
            raise OptionError(f"valsize must be >= 0, got {self.valsize}")
        for name in (
            "batch_size",
            "max_epochs",
            "threads",
            "validate_every_epochs",
            "validate_every_batches",
            "validate_every_instances",
            "report_every_batches",
            "report_every_instances",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise OptionError(f"{name} must be at least 1, got {value}")
        if self.es_patience is not None and self.es_patience < 0:
            raise OptionError(f"es_patience must be >= 0, got {self.es_patience}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise OptionError(f"learning_rate must be > 0, got {self.learning_rate}")
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
            return float(value) if prefix == "float" else value
    return value
