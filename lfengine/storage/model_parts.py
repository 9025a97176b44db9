"""Large, unchanging parts of a model's metadata kept in files of their own beside model.json.

A training run saves its model every time validation improves. The vocabularies (the codec) are
the bulk of model.json for real corpora and never change during a run, so rewriting them at
each save cost 0.3-0.5 s per epoch. They are written once per run instead, to a file named by
its content (``codec-<digest>.json``), and model.json holds a reference: the file name and the
SHA-256 of its bytes. A name derived from the content means a new run never overwrites the
file the previous model.json refers to, so a crash at any point leaves a loadable model.
Loading resolves references back into the metadata, checking the digest; model.json stays
self-describing and the directory self-contained.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from lfengine.errors import ModelError
from lfengine.files.paths import MAX_MODEL_JSON_BYTES, read_regular_bytes
from lfengine.files.safe_io import atomic_write, parse_strict_json, to_strict_json

#: Metadata keys that may be stored as a part file.
PART_KEYS = ("codec",)
_PART_NAME = re.compile(r"(?P<key>[a-z]+)-(?P<digest>[0-9a-f]{16})\.json")


def save_part(model_dir: str | Path, key: str, value: Any) -> dict[str, str]:
    """Write ``value`` to its content-named part file (once; kept if already there) and return
    the reference to put into the metadata in its place."""
    if key not in PART_KEYS:
        raise ValueError(f"{key!r} is not a part key")
    text = to_strict_json(value, key).encode("ascii")
    digest = hashlib.sha256(text).hexdigest()
    root = Path(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"{key}-{digest[:16]}.json"
    if not (root / name).is_file():
        atomic_write(root / name, lambda handle: handle.write(text))
    return {"file": name, "sha256": digest}


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"file", "sha256"}


def resolve_parts(model_dir: str | Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata with every part reference replaced by the part's checked content."""
    resolved = dict(metadata)
    for key in PART_KEYS:
        ref = metadata.get(key)
        if is_reference(ref):
            resolved[key] = _read_part(Path(model_dir), key, ref)
    return resolved


def _read_part(root: Path, key: str, ref: dict[str, Any]) -> Any:
    name, digest = ref["file"], ref["sha256"]
    match = _PART_NAME.fullmatch(name) if isinstance(name, str) else None
    if (
        match is None
        or match["key"] != key
        or not isinstance(digest, str)
        or not digest.startswith(match["digest"])
    ):
        raise ModelError(f"{root / 'model.json'}: bad reference for {key!r}: {ref!r}", file=str(root))
    path = root / name
    if not path.is_file():
        raise ModelError(
            f"{path} is missing (model.json refers to it): copy the whole model directory, or retrain",
            file=str(path),
        )
    data = read_regular_bytes(path, MAX_MODEL_JSON_BYTES)
    if hashlib.sha256(data).hexdigest() != digest:
        raise ModelError(
            f"{path} does not belong to model.json (SHA-256 differs): restore the directory as saved, "
            "or retrain",
            file=str(path),
        )
    return parse_strict_json(data.decode("ascii", errors="replace"), path)
