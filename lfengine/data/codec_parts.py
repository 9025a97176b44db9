"""How a codec is stored: the tables it shares, then an ordered list of its parts.

model.json (format 4 on) keeps the codec's shared state at the top (columns, vocabularies per
emb_id, embedding settings, labels, target scaling, untrained rows) and its input feature kinds
under ``parts``, in encoding order, each ``{"kind": name, ...its settings}``: the built-in
``nominal``, ``numeric``, ``lists`` and ``chars`` parts, then every registered column kind
(kinds.py). Codecs stored by earlier versions (formats 1-3) kept the built-in groups as keys of
their own and the registered kinds under ``kinds``; ``flat_codec`` reads both forms into the
one the ``Codec`` dataclass takes, so every model ever written loads as it always did.
"""

from __future__ import annotations

from typing import Any

from lfengine.errors import ModelError

#: Per built-in part: its stored key -> the Codec field it holds (``columns``: the part's columns).
BUILT_IN_PARTS: dict[str, dict[str, str]] = {
    "nominal": {
        "columns": "nominal",
        "previous_label_columns": "previous_label_columns",
        "token_columns": "token_columns",
        "key_column": "key_column",
    },
    "numeric": {"columns": "numeric"},
    "lists": {"columns": "lists", "token_lists": "token_lists"},
    "chars": {"column": "char_column", "alphabet": "char_vocab", "oov_rows": "char_oov_rows"},
}
#: Codec fields of a codec without characters (no ``chars`` part is stored then).
_NO_CHARS = {"char_column": None, "char_vocab": None, "char_oov_rows": []}


def stored_codec(flat: dict[str, Any]) -> dict[str, Any]:
    """The codec's fields (``Codec.to_dict`` before parts) as stored: shared state and ``parts``."""
    stored = dict(flat)
    parts = []
    for kind, keys in BUILT_IN_PARTS.items():
        values = {key: stored.pop(name) for key, name in keys.items()}
        if kind != "chars" or values["alphabet"] is not None:
            parts.append({"kind": kind, **values})
    parts += [{"kind": name, **settings} for name, settings in stored.pop("kinds", {}).items()]
    stored["parts"] = parts
    return stored


def flat_codec(stored: dict[str, Any]) -> dict[str, Any]:
    """The codec's fields from a stored codec of any format (parts, or the groups of 1-3)."""
    if "parts" not in stored:
        return dict(stored)
    flat = {k: v for k, v in stored.items() if k != "parts"}
    flat.update(_NO_CHARS)
    kinds: dict[str, Any] = {}
    for part in stored["parts"]:
        if not isinstance(part, dict) or not isinstance(part.get("kind"), str):
            raise ModelError(f"the stored codec has a part that is not {{'kind': name, ...}}: {part!r:.80}")
        settings = {k: v for k, v in part.items() if k != "kind"}
        keys = BUILT_IN_PARTS.get(part["kind"])
        if keys is None:
            kinds[part["kind"]] = settings
            continue
        if set(settings) != set(keys):
            raise ModelError(f"the stored codec's {part['kind']} part has keys {sorted(settings)}")
        flat.update({name: settings[key] for key, name in keys.items()})
    if kinds:
        flat["kinds"] = kinds
    return flat
