"""Which embedding rows training updates; the rest look up as OOV.

Vocabularies come from the meta file, i.e. from every line of the export, including the lines
that end up in the validation split. A row whose value never occurs in the training split
receives no update, so its vector is whatever initialisation left there: using it at application
time (or in validation) is worse than using the OOV row, which training teaches (rare training
tokens are replaced by OOV, see ``rare_rows`` and the trainer). So once the split is known,
every row that is neither in the training split nor from an embeddings file is mapped to OOV,
in the codec stored with the model. ``itos`` is untouched: the LF index conventions and the
oracle numbers describe the meta's vocabulary, and stay true.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lfengine.data.codec import Codec
from lfengine.data.encoding import Encoded, Ragged


def _present(size: int, ids: np.ndarray) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[np.unique(ids)] = True
    return mask


def rows_in(codec: Codec, data: Encoded) -> dict[str, np.ndarray]:
    """Per emb_id, a mask of the rows that some value of ``data`` uses."""
    masks = {e: np.zeros(len(v), dtype=bool) for e, v in codec.vocabs.items()}
    for j, col in enumerate(codec.nominal):
        masks[col.emb_id] |= _present(len(masks[col.emb_id]), data.nominal[:, j])
    for k, col in enumerate(codec.lists):
        masks[col.emb_id] |= _present(len(masks[col.emb_id]), data.lists[k].values)
    return masks


def restrict_to_trained(codec: Codec, train: Encoded) -> None:
    """Record in ``codec`` which rows the training split ``train`` leaves untrained and map them to
    OOV (the special rows PAD and OOV always stay); fills ``row_counts`` for describe."""
    for emb_id, seen in rows_in(codec, train).items():
        vocab = codec.vocabs[emb_id]
        specials = vocab.unknown_index + 1
        pretrained = np.zeros(len(vocab), dtype=bool)
        pretrained[codec.pretrained_rows.get(emb_id, [])] = True
        seen[:specials] = pretrained[:specials] = False
        oov = ~(seen | pretrained)
        oov[:specials] = False
        codec.oov_rows[emb_id] = np.flatnonzero(oov).tolist()
        codec.row_counts[emb_id] = {
            "trained": int(seen.sum()),
            "pretrained": int((pretrained & ~seen).sum()),
            "oov": int(oov.sum()),
        }
    if codec.char_vocab is not None and train.chars is not None:
        seen = _present(len(codec.char_vocab), train.chars.values)
        seen[:2] = True
        codec.char_oov_rows = np.flatnonzero(~seen).tolist()
    codec.apply_oov_rows()


def remap_untrained(codec: Codec, data: Encoded) -> Encoded:
    """``data`` (encoded before ``restrict_to_trained``) with the untrained rows replaced by the
    unknown index, as if it had been encoded afterwards."""

    def table(size: int, rows: list[int], unknown: int) -> np.ndarray:
        t = np.arange(size, dtype=np.int32)
        t[rows] = unknown
        return t

    tables = {e: table(len(v), codec.oov_rows.get(e, []), v.unknown_index) for e, v in codec.vocabs.items()}
    nominal = data.nominal.copy()
    for j, col in enumerate(codec.nominal):
        nominal[:, j] = tables[col.emb_id][nominal[:, j]]
    lists = [Ragged(tables[col.emb_id][r.values], r.offsets) for col, r in zip(codec.lists, data.lists)]
    chars = data.chars
    if chars is not None and codec.char_vocab is not None:
        chars = Ragged(table(len(codec.char_vocab), codec.char_oov_rows, 1)[chars.values], chars.offsets)
    return dataclasses.replace(data, nominal=nominal, lists=lists, chars=chars)


def rare_rows(codec: Codec, train: Encoded) -> dict[str, np.ndarray]:
    """Per emb_id of a token-string column, a mask of the rows whose value occurs once in the
    training split (a window of k columns sees one occurrence up to k times): the singletons
    that Lample et al. (2016) replace by OOV during training so that its row learns."""
    counts: dict[str, np.ndarray] = {}
    columns: dict[str, int] = {}
    for j in codec.token_columns:
        emb_id = codec.nominal[j].emb_id
        size = len(codec.vocabs[emb_id])
        counts[emb_id] = counts.get(emb_id, np.zeros(size, np.int64)) + np.bincount(
            train.nominal[:, j], minlength=size
        )
        columns[emb_id] = columns.get(emb_id, 0) + 1
    for k in codec.token_lists:
        emb_id = codec.lists[k].emb_id
        size = len(codec.vocabs[emb_id])
        counts[emb_id] = counts.get(emb_id, np.zeros(size, np.int64)) + np.bincount(
            train.lists[k].values, minlength=size
        )
        columns[emb_id] = max(columns.get(emb_id, 0), 1)
    rare = {}
    for emb_id, count in counts.items():
        mask = (count > 0) & (count <= columns[emb_id])
        mask[: codec.vocabs[emb_id].unknown_index + 1] = False
        rare[emb_id] = mask
    return rare
