"""Encode parsed LF records into compact ragged numpy arrays, validating as we go.

Rows are instances (classification) or sequence elements (sequences); each input feature kind
encodes its own columns (parts.py). Work is per column, not per value: types are checked with
``set(map(type, column))`` and vocabulary lookups run through ``np.fromiter``; only list
columns and characters need a Python pass over their items.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from lfengine.data.codec import Codec
from lfengine.data.parts import data_parts
from lfengine.data.values import Locator, Ragged, RecordError, RowContext
from lfengine.data.values import describe_value as _kind

#: Ragged and RecordError are where the encoder's users have always imported them from.
__all__ = ["Encoded", "Locator", "Ragged", "RecordError", "encode_records"]


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


def _encode_rows(codec: Codec, vectors: list, where: Callable, locate: Locator) -> Encoded:
    """A loop over the codec's parts (parts.py), each filling its field of Encoded."""
    ctx = RowContext(where, locate, codec.column_names)
    width = codec.num_features
    for row, vec in enumerate(vectors):
        if type(vec) is not list or len(vec) != width:
            raise ctx.error(
                row, None, "wrong number of feature values", expected=f"a list of {width}", found=_kind(vec)
            )
    columns = list(zip(*vectors)) if vectors else [()] * width
    fields: dict[str, Any] = {"chars": None, "kinds": {}}
    for part in data_parts(codec):
        part.store(fields, part.encode(columns, len(vectors), ctx))
    return Encoded(**fields, targets=None, seq_offsets=None)


def _encode_targets(codec: Codec, targets: list, where: Callable, locate: Locator) -> np.ndarray:
    ctx = RowContext(where, locate, codec.column_names)
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
