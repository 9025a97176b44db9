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
from lfengine.data.encoding import Encoded
from lfengine.data.parts import data_parts, oov_table


def _present(size: int, ids: np.ndarray) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[np.unique(ids)] = True
    return mask


def rows_in(codec: Codec, data: Encoded) -> dict[str, np.ndarray]:
    """Per emb_id, a mask of the rows that some value of ``data`` uses."""
    masks = {e: np.zeros(len(v), dtype=bool) for e, v in codec.vocabs.items()}
    for part in data_parts(codec):
        for emb_id, ids in part.table_ids(part.value(data)):
            masks[emb_id] |= _present(len(masks[emb_id]), ids)
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
    tables = {
        e: oov_table(len(v), codec.oov_rows.get(e, []), v.unknown_index) for e, v in codec.vocabs.items()
    }
    fields: dict = {}
    for part in data_parts(codec):
        part.store(fields, part.remap(part.value(data), tables))
    return dataclasses.replace(data, **fields)


def rare_rows(codec: Codec, train: Encoded) -> dict[str, np.ndarray]:
    """Per emb_id of a token-string column, a mask of the rows whose value occurs once in the
    training split (a window of k columns sees one occurrence up to k times): the singletons
    that Lample et al. (2016) replace by OOV during training so that its row learns."""
    counts: dict[str, np.ndarray] = {}
    windows: dict[str, int] = {}
    for part in data_parts(codec):
        for emb_id, ids, window in part.token_ids(part.value(train)):
            size = len(codec.vocabs[emb_id])
            counts[emb_id] = counts.get(emb_id, np.zeros(size, np.int64)) + np.bincount(ids, minlength=size)
            windows[emb_id] = windows.get(emb_id, 0) + window
    rare = {}
    for emb_id, count in counts.items():
        mask = (count > 0) & (count <= max(windows[emb_id], 1))
        mask[: codec.vocabs[emb_id].unknown_index + 1] = False
        rare[emb_id] = mask
    return rare
