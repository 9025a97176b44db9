"""Training options: one dataclass filled by the command line, the protocol and the GATE wrapper.

``None`` means "let the heuristics decide" (lfengine/builder/heuristics.py); the value actually
used, and where it came from, is shown by ``describe`` and stored with the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lfengine.errors import OptionError
from lfengine.files.paths import path_problem
from lfengine.settings import OPTIONS, Setting, record_fields


@dataclass
@record_fields(OPTIONS, record="options")
class TrainOptions:
    """Everything a user can set for one training run: one field per run option of
    lfengine/settings.py, with its default."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for setting in OPTIONS:
            check_option(setting, getattr(self, setting.name))

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrainOptions:
        """Build from a JSON object; unknown keys and wrong types are errors, never ignored."""
        values = dict(values or {})
        known = {s.name: s for s in OPTIONS}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise OptionError(
                f"unknown training option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        for name, value in values.items():
            values[name] = _coerce(name, known[name].annotation(record="options"), value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def named_modules(self) -> tuple[str, ...]:
        """The modules these options name (``module``, and ``module`` among the model settings)."""
        names = (self.module, self.model.get("module"))
        return tuple(name for name in names if isinstance(name, str))


def check_option(setting: Setting, value: Any) -> None:
    """A run option's choices, range and file name (its type is checked by ``from_dict``)."""
    name = setting.name
    if setting.json_type == "dict" and not isinstance(value, dict):
        raise OptionError(f"{name} must be a mapping of architecture settings")
    if value is None:
        return
    if not setting.accepts(value):
        raise OptionError(f"{name} must be {setting.allowed()}, got {value!r}")
    if setting.json_type == "int" and not setting.within(value):
        raise OptionError(f"{name} must be between {setting.low} and {setting.high}, got {value}")
    if setting.json_type == "float" and not setting.within(value):
        if setting.high is not None:
            raise OptionError(
                f"{name} must be a number between {setting.low} and {setting.high}, got {value}"
            )
        relation = ">" if setting.open_low else ">="
        raise OptionError(f"{name} must be a finite number {relation} {setting.low}, got {value}")
    problem = path_problem(value) if setting.path and isinstance(value, str) else None
    if problem is not None:
        raise OptionError(f"option {name} cannot name a file: {problem}")


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
