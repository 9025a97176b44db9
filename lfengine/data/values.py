"""Checked raw values and ragged rows: the pieces every column encoder shares (parts.py).

Errors name the record (and sequence element) and the feature through ``RowContext``; a value
of the wrong type is reported with ``describe_value``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from lfengine.errors import DataLineError

#: Maps a record number within the chunk to where it came from: {"file", "line"} or {"index"}.
Locator = Callable[[int], dict[str, Any]]

NUMBER_TYPES = {int, float, bool, type(None)}
STRING_TYPES = {str, type(None)}


class RecordError(DataLineError):
    """A DataLineError that remembers which record of the chunk was bad (for skip mode)."""

    def __init__(self, record: int, problem: str, **kw: Any) -> None:
        super().__init__(problem, **kw)
        self.record = record


@dataclass
class Ragged:
    """Variable-length rows: row r is ``values[offsets[r]:offsets[r+1]]``."""

    values: np.ndarray  # int32
    offsets: np.ndarray  # int64, len rows + 1

    @staticmethod
    def concat(parts: list[Ragged]) -> Ragged:
        values = np.concatenate([p.values for p in parts])
        shifts = np.cumsum([0] + [len(p.values) for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in zip(parts, shifts)])
        return Ragged(values, offsets.astype(np.int64))

    def take(self, rows: np.ndarray) -> Ragged:
        lengths = self.offsets[rows + 1] - self.offsets[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        index = np.repeat(self.offsets[rows] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Ragged(self.values[index], offsets)


def describe_value(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


class RowContext:
    """Turns a row number into an error at the right record (and element, for sequences)."""

    def __init__(self, where: Callable[[int], tuple[int, int | None]], locate: Locator, names: list[str]):
        self.where, self.locate, self.names = where, locate, names

    def error(self, row: int, column: int | None, problem: str, **kw: Any) -> RecordError:
        record, element = self.where(row)
        if element is not None:
            problem = f"element {element}: {problem}"
        feature = self.names[column] if column is not None else None
        return RecordError(record, problem, **self.locate(record), feature=feature, **kw)


def to_floats(values: tuple, column: int, ctx: RowContext) -> np.ndarray:
    """The column as float64; an integer beyond the float range (JSON allows 10**400) is an error."""
    try:
        return np.fromiter(values, dtype=np.float64, count=len(values))
    except OverflowError:
        for row, value in enumerate(values):
            try:
                float(value if value is not None else 0)
            except OverflowError:
                raise ctx.error(row, column, "number out of range", found=describe_value(value)) from None
        raise


def lookup_strings(vocab: Any, values: tuple, column: int, ctx: RowContext) -> np.ndarray:
    """Vocabulary indices of a column of strings (or nulls), checking the types on the way.

    The vocabulary's keys are strings (and null), so a value it knows is of the right type:
    only the values that map to the unknown index need their type checked. That saves a pass
    over every value on the hot path of apply-batch.
    """
    unknown = vocab.unknown_index
    try:
        ids = np.fromiter(map(vocab.stoi.get, values, repeat(unknown)), dtype=np.int32, count=len(values))
    except TypeError:  # an unhashable value (a list): report the first bad value of the column
        check_types(values, STRING_TYPES, "a string", column, ctx)
        raise
    for row in np.flatnonzero(ids == unknown).tolist():
        if type(values[row]) not in STRING_TYPES:
            found = describe_value(values[row])
            raise ctx.error(row, column, "wrong value type", expected="a string", found=found)
    return ids


def check_types(values: tuple, allowed: set, expected: str, column: int, ctx: RowContext) -> None:
    if set(map(type, values)) <= allowed:
        return
    for row, value in enumerate(values):
        if type(value) not in allowed:
            raise ctx.error(row, column, "wrong value type", expected=expected, found=describe_value(value))
