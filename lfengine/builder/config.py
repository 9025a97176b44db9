"""ModelConfig: every architecture and training setting of one model, in one JSON-able record.

The values are chosen by ``heuristics.choose_config`` (or set by the user) and stored with the
model, so that loading rebuilds exactly the network that was trained.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from lfengine.errors import ModelError, OptionError
from lfengine.options import check_json_type

LIST_ENCODERS = ("cnn", "lstm", "mean", "attention")
#: Upper bounds of integer settings: larger values are typos that would exhaust memory when
#: the network is built (a 16384 x 16384 layer is already 1 GiB).
MAX_WIDTH = 16384
MAX_DEPTH = 64
INT_MAXIMA = {
    "hidden_size": MAX_WIDTH,
    "cnn_channels": MAX_WIDTH,
    "list_lstm_hidden": MAX_WIDTH,
    "char_dims": MAX_WIDTH,
    "char_filters": MAX_WIDTH,
    "lstm_hidden": MAX_WIDTH,
    "hidden_layers": MAX_DEPTH,
    "lstm_layers": MAX_DEPTH,
    "char_kernel": MAX_DEPTH,
    "affix_dims": MAX_WIDTH,
    "cnn_kernels": MAX_DEPTH,
    "wide_ngrams": 2,
}
MAX_COUNT = 2**31 - 1  # batch_size, max_epochs, es_patience

#: Settings a model stored before they existed did not use: their old behaviour (the network
#: they built, or the training they had).
LEGACY_DEFAULTS = {
    "word_shape": False,
    "chunk_constraints": False,
    "affix_dims": 0,
    "unk_replace": 0.0,
    "word_dropout": 0.0,
    "oov_untrained": False,
    "lr_decay": 1.0,
    "es_min_delta": 0.0,
    "wide_ngrams": 0,
}


#: One line of help per setting, listed by ``lfengine train --help`` under --set.
SETTING_HELP = {
    "module": "the network: null/auto builds one for the task; a predefined name or file.py:Class",
    "hidden_size": "classifier/regressor hidden layer width",
    "hidden_layers": "classifier/regressor hidden layers (0: linear model over the features)",
    "dropout": "dropout between learned layers",
    "embedding_dropout": "on every embedding lookup (nominal, list tokens, characters)",
    "list_encoder": "encoder of token-list (N) columns: cnn, lstm, mean or attention",
    "cnn_kernels": "kernel widths of the list CNN",
    "cnn_channels": "filters per kernel width of the list CNN",
    "list_lstm_hidden": "hidden size per direction of the list BiLSTM",
    "char_encoder": "character CNN per token (sequence tagging with a char column)",
    "char_dims": "character embedding size",
    "char_filters": "character CNN filters",
    "char_kernel": "character CNN kernel width",
    "word_shape": "casing/shape flags per token from its characters (sequence tagging)",
    "affix_dims": "size of the hashed 1-4 character prefix/suffix embeddings per token (0: none)",
    "crf": "linear-chain CRF output layer (sequence tagging)",
    "chunk_constraints": "the CRF never puts X|I after O or after another type (chunk labels)",
    "wide_ngrams": "linear model over token lists beside the network: 0 off, 1 words, 2 + hashed bigrams",
    "lstm_hidden": "tagger BiLSTM hidden size per direction",
    "lstm_layers": "tagger BiLSTM layers",
    "learning_rate": "AdamW's learning rate",
    "batch_size": "training items (instances or sequences) per update",
    "max_epochs": "at most this many epochs",
    "es_patience": "validations without improvement before early stopping",
    "weight_decay": "AdamW's decoupled weight decay",
    "grad_clip": "largest gradient norm; 0 disables clipping",
    "previous_label_dropout": "share of training items whose gate.LF.target columns are hidden",
    "unk_replace": "chance that a rare (singleton) training token is replaced by OOV",
    "word_dropout": "chance that any training token is replaced by OOV",
    "oov_untrained": "rows training never updated look up as OOV",
    "lr_decay": "learning rate factor after validations without improvement (1: constant)",
    "es_min_delta": "smallest gain of the early-stopping score that counts as improvement",
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture (first block) and training settings (second block) of one model."""

    # --- architecture ---
    module: str | None
    hidden_size: int
    hidden_layers: int
    dropout: float
    embedding_dropout: float
    list_encoder: str
    cnn_kernels: tuple[int, ...]
    cnn_channels: int
    list_lstm_hidden: int
    char_encoder: bool
    char_dims: int
    char_filters: int
    char_kernel: int
    word_shape: bool
    affix_dims: int
    crf: bool
    chunk_constraints: bool
    lstm_hidden: int
    lstm_layers: int
    wide_ngrams: int
    # --- training ---
    learning_rate: float
    batch_size: int
    max_epochs: int
    es_patience: int
    weight_decay: float
    grad_clip: float
    previous_label_dropout: float
    unk_replace: float
    word_dropout: float
    oov_untrained: bool
    lr_decay: float
    es_min_delta: float

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["cnn_kernels"] = list(self.cnn_kernels)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Rebuild from ``to_dict`` output (e.g. model.json); a missing or unknown key is an error."""
        names = field_names()
        values = {**{k: v for k, v in LEGACY_DEFAULTS.items() if k not in values}, **values}
        unknown = sorted(set(values) - set(names))
        missing = sorted(set(names) - set(values))
        if unknown or missing:
            raise ModelError(
                f"model configuration does not match this lfengine version "
                f"(unknown keys: {', '.join(unknown) or '-'}; missing keys: {', '.join(missing) or '-'})"
            )
        try:
            return cls(**{name: coerce_value(name, value) for name, value in values.items()})
        except OptionError as err:
            raise ModelError(f"invalid stored model configuration: {err.message}") from err


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(ModelConfig))


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(ModelConfig)}


def coerce_value(name: str, value: Any) -> Any:
    """Check one setting's type and range; ints are accepted for floats, nothing else is converted."""
    annotation = _field_types()[name]
    if value is not None and name == "list_encoder" and value not in LIST_ENCODERS:
        raise OptionError(
            f"model setting list_encoder must be one of {', '.join(LIST_ENCODERS)}, got {value!r}"
        )
    value = check_json_type(f"model setting {name}", annotation, value)
    if value is None or annotation.startswith(("bool", "str")):
        return value
    if annotation.startswith("int"):
        minimum = 0 if name in ("hidden_layers", "es_patience", "affix_dims", "wide_ngrams") else 1
        maximum = INT_MAXIMA.get(name, MAX_COUNT)
        if not minimum <= value <= maximum:
            raise OptionError(f"model setting {name} must be between {minimum} and {maximum}, got {value}")
        return value
    if annotation.startswith("float"):
        return _check_float(name, value)
    return _check_kernels(name, value)


def _check_float(name: str, value: int | float) -> float:
    try:
        value = float(value)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise OptionError(f"model setting {name} must be a finite number, got {value!r}")
    if name in ("dropout", "embedding_dropout") and not 0.0 <= value < 1.0:
        raise OptionError(f"model setting {name} must be in [0, 1), got {value}")
    if name in ("previous_label_dropout", "unk_replace", "word_dropout") and not 0.0 <= value <= 1.0:
        raise OptionError(f"model setting {name} must be in [0, 1], got {value}")
    if name == "learning_rate" and not value > 0:
        raise OptionError(f"model setting learning_rate must be > 0, got {value}")
    if name == "lr_decay" and not 0.0 < value <= 1.0:
        raise OptionError(f"model setting lr_decay must be in (0, 1], got {value}")
    if value < 0:
        raise OptionError(f"model setting {name} must be >= 0, got {value}")
    return value


def _check_kernels(name: str, value: Any) -> tuple[int, ...]:
    """A tuple setting (cnn_kernels): a JSON list of integers, or the old wrapper's "3,4,5"."""
    if isinstance(value, str):  # the old wrapper's "3,4,5" form
        value = [int(part) if part.strip().isdigit() else part for part in value.split(",")]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise OptionError(f"model setting {name} must be a list of integers, got {value!r}")
    kernels = tuple(value)
    if not kernels or min(kernels) < 1 or max(kernels) > MAX_DEPTH or len(kernels) > MAX_DEPTH:
        raise OptionError(
            f"model setting {name} must be a non-empty list of at most {MAX_DEPTH} integers "
            f"between 1 and {MAX_DEPTH}"
        )
    return kernels


#: Settings the training reads (the loop, its optimizer and its input noise; not the network):
#: every network uses them. tests/test_cli_messages.py checks this list against the reads in
#: the training modules' code, both ways, so that it cannot drift from them.
TRAINING_SETTINGS = (
    "module",
    "learning_rate",
    "batch_size",
    "max_epochs",
    "es_patience",
    "weight_decay",
    "grad_clip",
    "previous_label_dropout",
    "unk_replace",
    "word_dropout",
    "oov_untrained",
    "lr_decay",
    "es_min_delta",
)


class ReadRecorder(ModelConfig):
    """A ModelConfig that notes which settings are read, so that a network built from it tells
    which settings it uses (``describe`` shows only those; a setting given but unread is warned
    about) without each network keeping a list that could drift from its code."""

    def __getattribute__(self, name: str) -> Any:
        reads = object.__getattribute__(self, "__dict__").get("_reads")
        if reads is not None and name in _FIELD_SET:
            reads.add(name)
        return object.__getattribute__(self, name)

    @classmethod
    def of(cls, config: ModelConfig) -> ReadRecorder:
        recorder = cls(**{name: getattr(config, name) for name in field_names()})
        object.__setattr__(recorder, "_reads", set())
        return recorder

    def reads(self) -> frozenset[str]:
        return frozenset(object.__getattribute__(self, "_reads"))


_FIELD_SET = frozenset(field_names())
