"""Encode parsed LF records into compact ragged numpy arrays, validating as we go.

Rows are instances (classification) or sequence elements (sequences). Work is per column, not
per value: types are checked with ``set(map(type, column))`` and vocabulary lookups run through
``np.fromiter``; only list columns and characters need a Python pass over their items.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

import numpy as np

from lfengine.data.codec import MAX_CHARS, Codec
from lfengine.data.kinds import kind_named
from lfengine.data.overrides import shorten_list
from lfengine.errors import DataLineError

#: Maps a record number within the chunk to where it came from: {"file", "line"} or {"index"}.
Locator = Callable[[int], dict[str, Any]]

_NUMBER_TYPES = {int, float, bool, type(None)}
_STRING_TYPES = {str, type(None)}


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


@dataclass
class Encoded:
    """A whole data set (or a batch of application instances) in encoded form."""

    nominal: np.ndarray  # (rows, Cn) int32
    numeric: np.ndarray  # (rows, Cf) float32
    lists: list[Ragged]
    chars: Ragged | None
    targets: np.ndarray | None  # (rows,) int64 label ids, or float32 standardised values
    seq_offsets: np.ndarray | None  # (n + 1,) int64 for sequences: element rows of sequence i
    #: Per column kind (data/kinds.py): a rows-aligned array or a Ragged.
    kinds: dict[str, np.ndarray | Ragged] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.seq_offsets) - 1 if self.seq_offsets is not None else len(self.nominal)

    def lengths(self) -> np.ndarray:
        """Elements per sequence (sequences) or ones (classification)."""
        if self.seq_offsets is None:
            return np.ones(len(self), dtype=np.int64)
        return np.diff(self.seq_offsets)

    def subset(self, items: np.ndarray) -> Encoded:
        items = np.asarray(items, dtype=np.int64)
        if self.seq_offsets is None:
            rows, seq_offsets = items, None
        else:
            part = Ragged(np.arange(len(self.nominal), dtype=np.int64), self.seq_offsets).take(items)
            rows, seq_offsets = part.values, part.offsets
        return Encoded(
            nominal=self.nominal[rows],
            numeric=self.numeric[rows],
            lists=[r.take(rows) for r in self.lists],
            chars=self.chars.take(rows) if self.chars is not None else None,
            targets=self.targets[rows] if self.targets is not None else None,
            seq_offsets=seq_offsets,
            kinds={k: p.take(rows) if isinstance(p, Ragged) else p[rows] for k, p in self.kinds.items()},
        )

    @staticmethod
    def concat(parts: list[Encoded]) -> Encoded:
        first = parts[0]
        seq = None
        if first.seq_offsets is not None:
            seq = Ragged.concat([Ragged(np.zeros(p.seq_offsets[-1], np.int32), p.seq_offsets) for p in parts])
        return Encoded(
            nominal=np.concatenate([p.nominal for p in parts]),
            numeric=np.concatenate([p.numeric for p in parts]),
            lists=[Ragged.concat([p.lists[i] for p in parts]) for i in range(len(first.lists))],
            chars=Ragged.concat([p.chars for p in parts]) if first.chars is not None else None,
            targets=np.concatenate([p.targets for p in parts]) if first.targets is not None else None,
            seq_offsets=seq.offsets if seq is not None else None,
            kinds={k: _concat_part([p.kinds[k] for p in parts]) for k in first.kinds},
        )


def _concat_part(parts: list[np.ndarray | Ragged]) -> np.ndarray | Ragged:
    return Ragged.concat(parts) if isinstance(parts[0], Ragged) else np.concatenate(parts)


def encode_records(codec: Codec, records: list, *, labeled: bool, locate: Locator) -> Encoded:
    """Validate and encode records: ``[features, target]`` when labeled, else bare features."""
    if labeled:
        pairs = [_split_pair(r, i, locate) for i, r in enumerate(records)]
        vectors = [p[0] for p in pairs]
        targets = [p[1] for p in pairs]
    else:
        vectors, targets = records, None
    if not codec.is_sequence:
        encoded = _encode_rows(codec, vectors, lambda row: (row, None), locate)
        if targets is not None:
            encoded.targets = _encode_targets(codec, targets, lambda row: (row, None), locate)
        return encoded
    lengths = []
    for i, seq in enumerate(vectors):
        if type(seq) is not list:
            raise RecordError(
                i, "a sequence must be a list of feature vectors", **locate(i), found=_kind(seq)
            )
        lengths.append(len(seq))
    offsets = np.zeros(len(vectors) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])

    def where(row: int) -> tuple[int, int]:
        seq = int(np.searchsorted(offsets, row, side="right")) - 1
        return seq, row - int(offsets[seq])

    encoded = _encode_rows(codec, list(chain.from_iterable(vectors)), where, locate)
    encoded.seq_offsets = offsets
    if targets is not None:
        for i, (seq, labels) in enumerate(zip(vectors, targets)):
            if type(labels) is not list or len(labels) != len(seq):
                raise RecordError(
                    i,
                    "a sequence needs one label per element",
                    **locate(i),
                    expected=f"a list of {len(seq)} labels",
                    found=_kind(labels),
                )
        encoded.targets = _encode_targets(codec, list(chain.from_iterable(targets)), where, locate)
    return encoded


def _split_pair(record: Any, i: int, locate: Locator) -> tuple[Any, Any]:
    if type(record) is not list or len(record) != 2:
        raise RecordError(i, "a training record must be [features, target]", **locate(i), found=_kind(record))
    return record[0], record[1]


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


class _RowContext:
    """Turns a row number into an error at the right record (and element, for sequences)."""

    def __init__(self, where: Callable[[int], tuple[int, int | None]], locate: Locator, names: list[str]):
        self.where, self.locate, self.names = where, locate, names

    def error(self, row: int, column: int | None, problem: str, **kw: Any) -> RecordError:
        record, element = self.where(row)
        if element is not None:
            problem = f"element {element}: {problem}"
        feature = self.names[column] if column is not None else None
        return RecordError(record, problem, **self.locate(record), feature=feature, **kw)


def _encode_rows(codec: Codec, vectors: list, where: Callable, locate: Locator) -> Encoded:
    ctx = _RowContext(where, locate, codec.column_names)
    width = codec.num_features
    for row, vec in enumerate(vectors):
        if type(vec) is not list or len(vec) != width:
            raise ctx.error(
                row, None, "wrong number of feature values", expected=f"a list of {width}", found=_kind(vec)
            )
    columns = list(zip(*vectors)) if vectors else [()] * width
    n = len(vectors)
    nominal = np.zeros((n, len(codec.nominal)), dtype=np.int32)
    for j, col in enumerate(codec.nominal):
        nominal[:, j] = _lookup_strings(codec.vocabs[col.emb_id], columns[col.index], col.index, ctx)
    numeric = np.zeros((n, len(codec.numeric)), dtype=np.float32)
    for j, col in enumerate(codec.numeric):
        values = columns[col.index]
        _check_types(values, _NUMBER_TYPES, "a number or boolean", col.index, ctx)
        floats = _floats(values, col.index, ctx)
        bad = ~np.isfinite(floats)
        if bad.any():
            for row in np.flatnonzero(bad):
                if values[row] is not None:
                    raise ctx.error(int(row), col.index, "not a finite number", found=repr(values[row]))
            floats[bad] = 0.0  # null is the missing value 0.0 (lf-format.md §5.2)
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = ((floats - col.mean) / col.std).astype(np.float32)
        overflow = ~np.isfinite(scaled)
        if overflow.any():  # finite in the request, but not once z-scored into float32
            row = int(np.flatnonzero(overflow)[0])
            raise ctx.error(
                row,
                col.index,
                "number out of range",
                found=_kind(values[row]),
                hint=f"standardised with mean {col.mean:g} and deviation {col.std:g} it exceeds float32",
            )
        numeric[:, j] = scaled
    lists = [_encode_list_column(codec, col, columns[col.index], ctx) for col in codec.lists]
    chars = None
    if codec.char_vocab is not None:
        chars = _encode_chars(codec, columns[codec.char_column])
    kinds = {
        name: kind_named(name).encode(settings, [columns[i] for i in settings["columns"]], ctx.error)
        for name, settings in codec.kinds.items()
    }
    return Encoded(nominal, numeric, lists, chars, None, None, kinds)


def _floats(values: tuple, column: int, ctx: _RowContext) -> np.ndarray:
    """The column as float64; an integer beyond the float range (JSON allows 10**400) is an error."""
    try:
        return np.fromiter(values, dtype=np.float64, count=len(values))
    except OverflowError:
        for row, value in enumerate(values):
            try:
                float(value if value is not None else 0)
            except OverflowError:
                raise ctx.error(row, column, "number out of range", found=_kind(value)) from None
        raise


def _lookup_strings(vocab: Any, values: tuple, column: int, ctx: _RowContext) -> np.ndarray:
    """Vocabulary indices of a column of strings (or nulls), checking the types on the way.

    The vocabulary's keys are strings (and null), so a value it knows is of the right type:
    only the values that map to the unknown index need their type checked. That saves a pass
    over every value on the hot path of apply-batch.
    """
    unknown = vocab.unknown_index
    try:
        ids = np.fromiter(map(vocab.stoi.get, values, repeat(unknown)), dtype=np.int32, count=len(values))
    except TypeError:  # an unhashable value (a list): report the first bad value of the column
        _check_types(values, _STRING_TYPES, "a string", column, ctx)
        raise
    for row in np.flatnonzero(ids == unknown).tolist():
        if type(values[row]) not in _STRING_TYPES:
            raise ctx.error(row, column, "wrong value type", expected="a string", found=_kind(values[row]))
    return ids


def _check_types(values: tuple, allowed: set, expected: str, column: int, ctx: _RowContext) -> None:
    if set(map(type, values)) <= allowed:
        return
    for row, value in enumerate(values):
        if type(value) not in allowed:
            raise ctx.error(row, column, "wrong value type", expected=expected, found=_kind(value))


def _encode_list_column(codec: Codec, col: Any, values: tuple, ctx: _RowContext) -> Ragged:
    items: list = []
    lengths = np.zeros(len(values), dtype=np.int64)
    for row, value in enumerate(values):
        if type(value) is not list:
            if value == "" or value is None:  # a missing LISTSEP value is the string "" (§5.5)
                continue
            raise ctx.error(
                row, col.index, "wrong value type", expected="a list of strings", found=_kind(value)
            )
        if col.maxlen and len(value) > col.maxlen:
            value = shorten_list(value, col.maxlen, col.shorten)
        lengths[row] = len(value)
        items.extend(value)
    bad = set(map(type, items)) - {str}
    if bad:
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        k = next(i for i, v in enumerate(items) if type(v) is not str)
        row = int(np.searchsorted(offsets, k, side="right")) - 1
        raise ctx.error(row, col.index, "wrong list item type", expected="strings", found=_kind(items[k]))
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Ragged(codec.vocabs[col.emb_id].lookup(items, len(items)), offsets)


def _encode_chars(codec: Codec, words: tuple) -> Ragged:
    get = codec.char_vocab.stoi.get
    cut = [w[:MAX_CHARS] if w else "" for w in words]
    lengths = np.fromiter(map(len, cut), dtype=np.int64, count=len(cut))
    offsets = np.zeros(len(cut) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    chars = "".join(cut)
    values = np.fromiter(map(get, chars, repeat(1)), dtype=np.int32, count=len(chars))
    return Ragged(values, offsets)


def _encode_targets(codec: Codec, targets: list, where: Callable, locate: Locator) -> np.ndarray:
    ctx = _RowContext(where, locate, codec.column_names)
    if codec.task == "regression":
        for row, t in enumerate(targets):
            if type(t) not in (int, float) or not math.isfinite(t):
                raise ctx.error(row, None, "the target must be a finite number", found=_kind(t))
        values = np.asarray(targets, dtype=np.float64)
        return ((values - codec.target_mean) / codec.target_std).astype(np.float32)
    index = codec.label_index
    get = index.get
    try:
        ids = np.fromiter((get(t, -1) for t in targets), dtype=np.int64, count=len(targets))
    except TypeError:
        ids = np.array([get(t, -1) if isinstance(t, str) else -1 for t in targets], dtype=np.int64)
    for row in np.flatnonzero(ids < 0)[:1]:
        label = targets[row]
        shown = ", ".join(codec.labels[:20]) + (", ..." if len(codec.labels) > 20 else "")
        problem = "unknown label" if isinstance(label, str) else "the target must be a label string"
        raise ctx.error(
            int(row),
            None,
            problem,
            found=_kind(label),
            expected=f"one of {shown}",
            hint="the meta file's targetStats lists every label; was the data exported with it?",
        )
    return ids
