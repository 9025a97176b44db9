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
from lfengine.settings import BY_NAME, MAX_DEPTH, MODEL_SETTINGS, NO_LEGACY, TRAINING, Setting, record_fields

LIST_ENCODERS: tuple[str, ...] = BY_NAME["list_encoder"].choices
#: Settings a model stored before they existed did not use: their old behaviour (the network
#: they built, or the training they had).
LEGACY_DEFAULTS = {s.name: s.legacy for s in MODEL_SETTINGS if s.legacy is not NO_LEGACY}


@dataclass(frozen=True)
@record_fields(MODEL_SETTINGS, record="model")
class ModelConfig:
    """Every model setting of lfengine/settings.py (its network's, then its training's)."""

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
    return tuple(s.name for s in MODEL_SETTINGS)


def coerce_value(name: str, value: Any) -> Any:
    """Check one setting's type and range; ints are accepted for floats, nothing else is converted."""
    setting = BY_NAME[name]
    label = f"model setting {name}"
    if value is not None and not setting.accepts(value):
        raise OptionError(f"{label} must be {setting.allowed()}, got {value!r}")
    value = check_json_type(label, setting.annotation(record="model"), value)
    if value is None or setting.json_type in ("bool", "str"):
        return value
    if setting.json_type == "int":
        if not setting.within(value):
            raise OptionError(f"{label} must be between {setting.low} and {setting.high}, got {value}")
        return value
    if setting.json_type == "float":
        return _check_float(setting, value)
    return _check_kernels(setting, value)


def _check_float(setting: Setting, value: int | float) -> float:
    try:
        value = float(value)
    except OverflowError:
        value = math.inf
    label = f"model setting {setting.name}"
    if not math.isfinite(value):
        raise OptionError(f"{label} must be a finite number, got {value!r}")
    if not setting.within(value):
        raise OptionError(f"{label} must be {_range_text(setting)}, got {value}")
    return value


def _range_text(setting: Setting) -> str:
    """[0, 1), (0, 1], >= 0, ...: a float setting's range as its messages write it."""
    if setting.high is None:
        return f"{'>' if setting.open_low else '>='} {setting.low}"
    left, right = "(" if setting.open_low else "[", ")" if setting.open_high else "]"
    return f"in {left}{setting.low}, {setting.high}{right}"


def _check_kernels(setting: Setting, value: Any) -> tuple[int, ...]:
    """A tuple setting (cnn_kernels): a JSON list of integers, or the old wrapper's "3,4,5"."""
    if isinstance(value, str):  # the old wrapper's "3,4,5" form
        value = [int(part) if part.strip().isdigit() else part for part in value.split(",")]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise OptionError(f"model setting {setting.name} must be a list of integers, got {value!r}")
    kernels = tuple(value)
    if not kernels or not all(map(setting.within, kernels)) or len(kernels) > MAX_DEPTH:
        raise OptionError(
            f"model setting {setting.name} must be a non-empty list of at most {MAX_DEPTH} integers "
            f"between {setting.low} and {setting.high}"
        )
    return kernels


#: Settings the training reads (the loop, its optimizer and its input noise; not the network):
#: every network uses them. tests/test_cli_messages.py checks this list against the reads in
#: the training modules' code, both ways, so that it cannot drift from them.
TRAINING_SETTINGS = tuple(s.name for s in MODEL_SETTINGS if s.scope == TRAINING)


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
