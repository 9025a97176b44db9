"""The parts of the encoded data: one class per input feature kind, found by ``data_parts``.

Each part encodes its columns of a chunk of records (validating as it goes) into the field of
``Encoded`` and ``Batch`` that it fills: ``nominal`` (rows, Cn) vocabulary ids in the tables
shared per emb_id, ``numeric`` (rows, Cf) z-scored floats, ``lists`` one Ragged per token-list
column, ``chars`` the characters of the character column, and ``kinds[name]`` for each
registered column kind (kinds.py). The encoder is a loop over these parts, in this order; the
builder's parts (lfengine/builder/parts.py) read the same fields.

Besides encoding, a part answers for its field where rows of the shared tables are concerned
(``table_ids``, ``token_ids``, ``remap``: which rows training updates and which are rare, see
rows.py) and puts training noise into its field of a batch (``noise``, see
lfengine/training/input_noise.py).
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

import numpy as np
import torch

from lfengine.data.batch import Batch
from lfengine.data.codec import MAX_CHARS, Codec
from lfengine.data.kinds import kind_named
from lfengine.data.overrides import shorten_list
from lfengine.data.values import (
    NUMBER_TYPES,
    Ragged,
    RowContext,
    check_types,
    describe_value,
    lookup_strings,
    to_floats,
)


class DataPart:
    """Base of a part; subclasses set ``field`` and implement ``encode``."""

    field: str = ""

    def encode(self, columns: list[tuple], rows: int, ctx: RowContext) -> Any:
        """The part of ``rows`` records or elements from the chunk's ``columns`` (one tuple of
        values per LF column); a bad value raises ``ctx.error(row, column, problem, ...)``."""
        raise NotImplementedError

    def store(self, fields: dict[str, Any], value: Any) -> None:
        fields[self.field] = value

    def value(self, data: Any) -> Any:
        """The part's field of an Encoded (or Batch)."""
        return getattr(data, self.field)

    def table_ids(self, value: Any) -> list[tuple[str, np.ndarray]]:
        """(emb_id, ids) for each column of ``value`` that looks up a shared table."""
        return []

    def token_ids(self, value: Any) -> list[tuple[str, np.ndarray, int]]:
        """(emb_id, ids, window) for each token-string column: ids of words that new documents
        bring unseen ones of; ``window``: how many times one occurrence can be counted."""
        return []

    def remap(self, value: Any, tables: dict[str, np.ndarray]) -> Any:
        """``value`` with each id of a shared table replaced by ``tables[emb_id][id]``."""
        return value

    def noise(self, batch: Batch, config: Any, rare: dict[str, torch.Tensor]) -> None:
        """Put training noise into the part's field of ``batch``, in place; ``config``: the
        model's settings, ``rare``: per emb_id a mask of its rare rows (rows.rare_rows)."""


class NominalData(DataPart):
    """Scalar nominal columns -> their ids in the vocabulary of their emb_id."""

    field = "nominal"

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def encode(self, columns: list[tuple], rows: int, ctx: RowContext) -> np.ndarray:
        codec = self.codec
        ids = np.zeros((rows, len(codec.nominal)), dtype=np.int32)
        for j, col in enumerate(codec.nominal):
            ids[:, j] = lookup_strings(codec.vocabs[col.emb_id], columns[col.index], col.index, ctx)
        return ids

    def table_ids(self, value: np.ndarray) -> list[tuple[str, np.ndarray]]:
        return [(col.emb_id, value[:, j]) for j, col in enumerate(self.codec.nominal)]

    def token_ids(self, value: np.ndarray) -> list[tuple[str, np.ndarray, int]]:
        return [(self.codec.nominal[j].emb_id, value[:, j], 1) for j in self.codec.token_columns]

    def remap(self, value: np.ndarray, tables: dict[str, np.ndarray]) -> np.ndarray:
        value = value.copy()
        for j, col in enumerate(self.codec.nominal):
            value[:, j] = tables[col.emb_id][value[:, j]]
        return value

    def noise(self, batch: Batch, config: Any, rare: dict[str, torch.Tensor]) -> None:
        """Hide previous-label columns (gate.LF.target) in a random share of the training items,
        then feed some tokens of the token-string columns as OOV (``unknown_words``).

        GATE fills previous-label columns with gold labels for training but leaves them empty
        when it applies a model (gate-plugin.md §8, item 8); a model that always saw them would
        lean on an input that never comes. Training without them part of the time teaches it to
        do without (defect C13); the share is the ``previous_label_dropout`` heuristic.
        """
        codec = self.codec
        columns, rate = codec.previous_label_columns, config.previous_label_dropout
        if columns and rate > 0:
            hide = torch.rand(batch.nominal.shape[:-1], device=batch.nominal.device) < rate
            part = batch.nominal[..., columns]
            batch.nominal[..., columns] = part.masked_fill(hide.unsqueeze(-1), 0)
        if config.unk_replace <= 0 and config.word_dropout <= 0:
            return
        for j in codec.token_columns:
            emb_id = codec.nominal[j].emb_id
            unknown = codec.vocabs[emb_id].unknown_index
            batch.nominal[..., j] = unknown_words(batch.nominal[..., j], rare.get(emb_id), unknown, config)


class NumericData(DataPart):
    """Numeric and boolean columns -> z-scored float32 (null is the missing value 0.0)."""

    field = "numeric"

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def encode(self, columns: list[tuple], rows: int, ctx: RowContext) -> np.ndarray:
        numeric = np.zeros((rows, len(self.codec.numeric)), dtype=np.float32)
        for j, col in enumerate(self.codec.numeric):
            values = columns[col.index]
            check_types(values, NUMBER_TYPES, "a number or boolean", col.index, ctx)
            floats = to_floats(values, col.index, ctx)
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
                    found=describe_value(values[row]),
                    hint=f"standardised with mean {col.mean:g} and deviation {col.std:g} it exceeds float32",
                )
            numeric[:, j] = scaled
        return numeric


class ListData(DataPart):
    """Token-list columns (N, LISTSEP) -> one Ragged of vocabulary ids per column."""

    field = "lists"

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def encode(self, columns: list[tuple], rows: int, ctx: RowContext) -> list[Ragged]:
        return [self._column(col, columns[col.index], ctx) for col in self.codec.lists]

    def _column(self, col: Any, values: tuple, ctx: RowContext) -> Ragged:
        items: list = []
        lengths = np.zeros(len(values), dtype=np.int64)
        for row, value in enumerate(values):
            if type(value) is not list:
                if value == "" or value is None:  # a missing LISTSEP value is the string "" (§5.5)
                    continue
                found = describe_value(value)
                raise ctx.error(row, col.index, "wrong value type", expected="a list of strings", found=found)
            if col.maxlen and len(value) > col.maxlen:
                value = shorten_list(value, col.maxlen, col.shorten)
            lengths[row] = len(value)
            items.extend(value)
        bad = set(map(type, items)) - {str}
        if bad:
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            k = next(i for i, v in enumerate(items) if type(v) is not str)
            row = int(np.searchsorted(offsets, k, side="right")) - 1
            raise ctx.error(
                row, col.index, "wrong list item type", expected="strings", found=describe_value(items[k])
            )
        offsets = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Ragged(self.codec.vocabs[col.emb_id].lookup(items, len(items)), offsets)

    def table_ids(self, value: list[Ragged]) -> list[tuple[str, np.ndarray]]:
        return [(col.emb_id, ragged.values) for col, ragged in zip(self.codec.lists, value)]

    def token_ids(self, value: list[Ragged]) -> list[tuple[str, np.ndarray, int]]:
        return [(self.codec.lists[k].emb_id, value[k].values, 0) for k in self.codec.token_lists]

    def remap(self, value: list[Ragged], tables: dict[str, np.ndarray]) -> list[Ragged]:
        return [Ragged(tables[col.emb_id][r.values], r.offsets) for col, r in zip(self.codec.lists, value)]

    def noise(self, batch: Batch, config: Any, rare: dict[str, torch.Tensor]) -> None:
        """Some tokens of the token-string lists as OOV (``unknown_words``)."""
        if config.unk_replace <= 0 and config.word_dropout <= 0:
            return
        for k in self.codec.token_lists:
            emb_id = self.codec.lists[k].emb_id
            unknown = self.codec.vocabs[emb_id].unknown_index
            batch.lists[k] = unknown_words(batch.lists[k], rare.get(emb_id), unknown, config)


class CharData(DataPart):
    """The characters of the character column's words (cut to MAX_CHARS), as character ids."""

    field = "chars"

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def encode(self, columns: list[tuple], rows: int, ctx: RowContext) -> Ragged:
        get = self.codec.char_vocab.stoi.get
        cut = [w[:MAX_CHARS] if w else "" for w in columns[self.codec.char_column]]
        lengths = np.fromiter(map(len, cut), dtype=np.int64, count=len(cut))
        offsets = np.zeros(len(cut) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        chars = "".join(cut)
        values = np.fromiter(map(get, chars, repeat(1)), dtype=np.int32, count=len(chars))
        return Ragged(values, offsets)

    def remap(self, value: Ragged | None, tables: dict[str, np.ndarray]) -> Ragged | None:
        """Characters training never saw as the unknown character (1)."""
        if value is None:
            return None
        table = oov_table(len(self.codec.char_vocab), self.codec.char_oov_rows, 1)
        return Ragged(table[value.values], value.offsets)


class KindData(DataPart):
    """A registered column kind (kinds.py): its claimed columns -> ``kinds[name]``."""

    field = "kinds"

    def __init__(self, name: str, settings: dict[str, Any]) -> None:
        self.name, self.settings, self.kind = name, settings, kind_named(name)

    def encode(self, columns: list[tuple], rows: int, ctx: RowContext) -> Any:
        return self.kind.encode(self.settings, [columns[i] for i in self.settings["columns"]], ctx.error)

    def store(self, fields: dict[str, Any], value: Any) -> None:
        fields.setdefault("kinds", {})[self.name] = value

    def value(self, data: Any) -> Any:
        return data.kinds.get(self.name)

    def noise(self, batch: Batch, config: Any, rare: dict[str, torch.Tensor]) -> None:
        """The kind's own noise hook (ColumnKind.noise)."""
        if self.name in batch.kinds:
            lengths = batch.kind_lengths.get(self.name)
            batch.kinds[self.name] = self.kind.noise(self.settings, batch.kinds[self.name], lengths, config)


def unknown_words(ids: torch.Tensor, rare: torch.Tensor | None, unknown: int, config: Any) -> torch.Tensor:
    """Feed some training tokens as OOV, so that the OOV row learns what an unseen word means:
    a rare (singleton) token with chance ``unk_replace`` (Lample et al. 2016), any token with
    chance ``word_dropout``. PAD (missing) stays PAD."""
    chance = torch.full(ids.shape, config.word_dropout, device=ids.device)
    if rare is not None:
        chance = torch.where(rare[ids], max(config.unk_replace, config.word_dropout), chance)
    hit = (torch.rand(ids.shape, device=ids.device) < chance) & (ids > unknown)
    return ids.masked_fill(hit, unknown)


def oov_table(size: int, rows: list[int], unknown: int) -> np.ndarray:
    """An id -> id table that sends ``rows`` to ``unknown`` and keeps every other id."""
    table = np.arange(size, dtype=np.int32)
    table[rows] = unknown
    return table


def data_parts(codec: Codec) -> list[DataPart]:
    """The codec's parts in encoding order: the characters only where the codec has them."""
    parts: list[DataPart] = [NominalData(codec), NumericData(codec), ListData(codec)]
    if codec.char_vocab is not None:
        parts.append(CharData(codec))
    return parts + [KindData(name, settings) for name, settings in codec.kinds.items()]
