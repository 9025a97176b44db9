"""Predictions a person can read on the command line: each probability under its label's name, and
each token of a sequence beside its label. (The protocol sends the label order once per batch
instead, protocol.md §5.3; a line of `lfengine apply` stands alone, so it names them itself.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the codec (numpy) loads with the model, not with `lfengine --help`
    from lfengine.data.codec import Codec


def token_column(codec: Codec) -> int:
    """The element column shown as the token: the token string at the token itself (the codec's
    ``key_column``, chosen by lfengine.data.codec.find_char_source), else the char encoder's
    source column (models saved before ``key_column``), else the first column."""
    if codec.key_column is not None:
        return codec.nominal[codec.key_column].index
    return codec.char_column if codec.char_column is not None else 0


def token_text(element: Any, column: int) -> str:
    """One sequence element's token as a single-line string (a list value joined by spaces)."""
    token = element[column] if isinstance(element, list) and len(element) > column else element
    token = " ".join(map(str, token)) if isinstance(token, list) else str(token)
    return token.replace("\t", " ").replace("\n", " ")


def readable_result(result: dict, codec: Codec, elements: list | None) -> dict:
    """``result`` of LoadedModel.apply for one instance (``elements`` None) or one sequence (its
    elements), for a person: a sequence gets ``tokens`` first, and a distribution becomes
    ``{label: probability}`` in the model's label order (per element for a sequence)."""
    out: dict[str, Any] = {}
    if elements is not None:
        column = token_column(codec)
        out["tokens"] = [token_text(element, column) for element in elements]
    out.update(result)
    if "distribution" in result:
        dist = result["distribution"]
        if elements is None:
            out["distribution"] = dict(zip(codec.labels, dist))
        else:
            out["distribution"] = [dict(zip(codec.labels, d)) for d in dist]
    return out
