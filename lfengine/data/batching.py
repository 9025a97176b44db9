"""Validation splits, per-epoch shuffled (length-bucketed) batches, and padding into tensors."""

from __future__ import annotations

import numpy as np
import torch

from lfengine.data.batch import IGNORE_INDEX, Batch
from lfengine.data.encoding import Encoded, Ragged
from lfengine.errors import OptionError
from lfengine.settings import DEFAULT_VALSIZE, DEFAULT_VALSPLIT


def validation_size(n: int, valsize: float | None) -> int:
    """``valsize`` >= 1 is a count, below 1 a fraction, 0 none; None: the 10 % default.
    The old wrapper read ``1`` as the fraction 1.0 and failed (R9); here 1 means one instance."""
    if valsize is None:
        valsize = DEFAULT_VALSIZE
    if valsize == 0:
        return 0
    size = int(round(valsize)) if valsize >= 1 else int(round(n * valsize))
    size = max(size, 1)
    if size >= n:
        raise OptionError(f"validation size {size} leaves nothing to train on ({n} instances)")
    return size


def split_indices(
    n: int, valsize: float | None, *, seed: int, shuffle: bool = True, valsplit: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation split: ``tail`` takes the last items of the file (LF writes documents in
    order, so these are the nearest thing to new documents), ``random`` a seeded sample (None:
    ``DEFAULT_VALSPLIT``, chosen by measurement: bench/bench_generalisation.py, README;
    lfengine.options checks the name). Without shuffling the validation
    set is always the tail.

    Either way the validation split meets unknown words at the natural rate: values that occur
    only there are mapped to OOV once the split is known (lfengine/data/rows.py)."""
    size = validation_size(n, valsize)
    tail = (valsplit or DEFAULT_VALSPLIT) == "tail" or not shuffle
    order = np.arange(n) if tail else np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n - size]), np.sort(order[n - size :])


def batch_indices(
    lengths: np.ndarray, batch_size: int, *, rng: np.random.Generator | None, bucket: bool
) -> list[np.ndarray]:
    """Index arrays of the batches of one epoch.

    With ``rng`` the order is shuffled (per epoch). With ``bucket`` (sequences) items of similar
    length are batched together, which cuts padding work, and the batch order is shuffled.
    """
    n = len(lengths)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    if bucket:
        # Sort within windows of 50 batches: similar lengths together, still random overall.
        window = batch_size * 50
        order = (
            np.concatenate(
                [
                    order[i : i + window][np.argsort(lengths[order[i : i + window]], kind="stable")]
                    for i in range(0, n, window)
                ]
            )
            if n
            else order
        )
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if bucket and rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _pad(
    ragged: Ragged, rows: np.ndarray, valid: np.ndarray | None = None, multiple: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of a ragged array (any shape of row indices) padded with 0 on a new last axis."""
    flat_rows = rows.reshape(-1)
    lengths = ragged.offsets[flat_rows + 1] - ragged.offsets[flat_rows]
    if valid is not None:
        lengths = lengths * valid.reshape(-1)
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    width = -(-width // multiple) * multiple
    steps = np.arange(width)
    mask = steps[None, :] < lengths[:, None]
    index = np.where(mask, ragged.offsets[flat_rows][:, None] + steps[None, :], 0)
    values = np.where(mask, ragged.values[index] if len(ragged.values) else 0, 0)
    shape = rows.shape + (width,)
    return (
        torch.from_numpy(values.reshape(shape).astype(np.int64)),
        torch.from_numpy(lengths.reshape(rows.shape)),
    )


def collate(data: Encoded, items: np.ndarray) -> Batch:
    """Pad the chosen instances or sequences into a Batch."""
    items = np.asarray(items, dtype=np.int64)
    if data.seq_offsets is None:
        lists = [_pad(r, items) for r in data.lists]
        targets = None
        if data.targets is not None:
            targets = torch.from_numpy(data.targets[items])
        return Batch(
            nominal=torch.from_numpy(data.nominal[items].astype(np.int64)),
            numeric=torch.from_numpy(data.numeric[items]),
            lists=[t for t, _ in lists],
            list_lengths=[n for _, n in lists],
            targets=targets,
            items=torch.from_numpy(items),
            **_collate_kinds(data, items, None),
        )
    starts = data.seq_offsets[items]
    lengths = data.seq_offsets[items + 1] - starts
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    steps = np.arange(width)
    valid = steps[None, :] < lengths[:, None]
    rows = np.where(valid, starts[:, None] + steps[None, :], 0)
    if len(data.nominal) == 0:
        rows = np.zeros_like(rows)
    nominal = np.where(valid[..., None], data.nominal[rows] if len(data.nominal) else 0, 0)
    numeric = np.where(valid[..., None], data.numeric[rows] if len(data.numeric) else 0, 0).astype(np.float32)
    lists = [_pad(r, rows, valid) for r in data.lists]
    # Character widths are rounded up to a multiple of 8: far fewer distinct tensor shapes, so the
    # kernels that oneDNN compiles and caches per shape are reused from request to request.
    chars = _pad(data.chars, rows, valid, multiple=8)[0] if data.chars is not None else None
    targets = None
    if data.targets is not None:
        picked = data.targets[rows] if len(data.targets) else np.zeros(rows.shape, data.targets.dtype)
        targets = torch.from_numpy(np.where(valid, picked, IGNORE_INDEX).astype(np.int64))
    return Batch(
        nominal=torch.from_numpy(nominal.astype(np.int64)),
        numeric=torch.from_numpy(numeric),
        lists=[t for t, _ in lists],
        list_lengths=[n for _, n in lists],
        chars=chars,
        lengths=torch.from_numpy(lengths.astype(np.int64)),
        targets=targets,
        **_collate_kinds(data, rows, valid),
    )


def _collate_kinds(data: Encoded, rows: np.ndarray, valid: np.ndarray | None) -> dict[str, dict]:
    """The column kinds' parts (data/kinds.py) padded by their shape: a Ragged like a list column,
    a rows-aligned array like the numeric columns (0 at padded sequence positions)."""
    parts, lengths = {}, {}
    for name, part in data.kinds.items():
        if isinstance(part, Ragged):
            parts[name], lengths[name] = _pad(part, rows, valid)
            continue
        picked = part[rows] if len(part) else np.zeros(rows.shape + part.shape[1:], part.dtype)
        if valid is not None:
            picked = np.where(valid.reshape(valid.shape + (1,) * (picked.ndim - 2)), picked, 0)
        parts[name] = torch.from_numpy(np.ascontiguousarray(picked))
    return {"kinds": parts, "kind_lengths": lengths} if parts else {}
