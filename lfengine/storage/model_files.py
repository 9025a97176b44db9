"""The tensor files of a model directory (weights, checkpoint): named by their content, never
rewritten, and removed only once no committed model.json names them.

A save used to replace ``weights.pt`` and then ``model.json``: a crash between the two renames
left weights that did not belong to their model.json, and a reader between them saw the same
mismatch. Now every file a model.json names is immutable and named by the SHA-256 of its bytes
(``weights-<digest>.pt``, ``checkpoint-<digest>.pt``, like the codec's ``codec-<digest>.json``
of lfengine.storage.model_parts); it is written and fsynced before the model.json that names it, and the
rename of model.json is the one commit point of a save. Files of earlier commits are deleted
after it. Directories written by lfengine before format 3 (fixed names ``weights.pt`` and
``checkpoint.pt``) still load and resume: their names are accepted as references too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from lfengine.errors import ModelError
from lfengine.files.paths import open_regular
from lfengine.files.safe_io import _fsync_directory, atomic_write, load_tensor_file
from lfengine.storage.model_parts import PART_KEYS, is_reference

#: Names a model.json may give its tensor files: content-named, or the fixed names of format 1-2.
_NAMES = {
    "weights": re.compile(r"weights(-[0-9a-f]{16})?\.pt"),
    "checkpoint": re.compile(r"checkpoint(-[0-9a-f]{16})?\.pt"),
}
#: Every file name some model.json may name (tensor files and codec parts): what cleanup considers.
_OWNED = re.compile(r"(weights|checkpoint)(-[0-9a-f]{16})?\.pt|[a-z]+-[0-9a-f]{16}\.json")


def write_content_named(
    root: Path, stem: str, suffix: str, write: Callable[[BinaryIO], None]
) -> dict[str, str]:
    """Write a file through ``write`` (atomically, fsynced) under the name ``<stem>-<digest><suffix>``
    and return its reference ``{"file", "sha256"}``."""
    staging = root / f".{stem}{suffix}.{os.getpid()}.{secrets.token_hex(4)}.tmp"  # a stale-temp name
    try:
        digest = atomic_write(staging, write)
        name = f"{stem}-{digest[:16]}{suffix}"
        # A file of that name holds these very bytes unless it was altered: replace it anyway
        # (a reader that opened it keeps reading its own copy), and a planted link with it.
        os.replace(staging, root / name)
        _fsync_directory(root)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return {"file": name, "sha256": digest}


def save_tensors(root: Path, stem: str, value: Any) -> dict[str, str]:
    """torch.save ``value`` to a content-named file (``weights``, ``checkpoint``); its reference."""
    return write_content_named(root, stem, ".pt", lambda handle: torch.save(value, handle))


def check_reference(kind: str, ref: Any, model_json: Path) -> dict[str, Any]:
    """A tensor-file reference from model.json, checked: a plain file name of the right kind (no
    path: it cannot leave the directory) and a hex digest (None for a format-1 checkpoint)."""
    name = ref.get("file") if isinstance(ref, dict) else None
    digest = ref.get("sha256") if isinstance(ref, dict) else None
    if (
        not isinstance(name, str)
        or not _NAMES[kind].fullmatch(name)
        or not (digest is None or (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)))
        or ("-" in name and (digest is None or not name.startswith(f"{kind}-{digest[:16]}")))
    ):
        raise ModelError(f"{model_json}: bad reference for {kind!r}: {ref!r}", file=str(model_json))
    return {"file": name, "sha256": digest}


def normalised(document: dict[str, Any], file: Path) -> dict[str, Any]:
    """A model.json document with its ``weights`` and ``checkpoint`` references checked; one of
    format 1-2 gets those of the fixed names (weights.pt by its digest, checkpoint.pt unchecked)."""
    if document["format_version"] < 3 and isinstance(document.get("weights_sha256"), str):
        document["weights"] = {"file": "weights.pt", "sha256": document["weights_sha256"]}
        document["checkpoint"] = {"file": "checkpoint.pt", "sha256": None}
    if not isinstance(document.get("metadata"), dict) or "weights" not in document:
        raise ModelError(f"{file} lacks 'metadata' or 'weights'", file=str(file))
    document["weights"] = check_reference("weights", document["weights"], file)
    if document.get("checkpoint") is not None:
        document["checkpoint"] = check_reference("checkpoint", document["checkpoint"], file)
    return document


def generation(model_json: Path) -> tuple[int, int, int] | None:
    """Which model.json is there now: each commit renames a new file over it."""
    try:
        info = os.stat(model_json)
    except (OSError, ValueError):  # ValueError: a NUL in the path, which read_model_json refuses
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def load_tensors(root: Path, ref: dict[str, Any], what: str, map_location: str | torch.device) -> Any:
    """The tensors of the file ``ref`` names, opened once: its digest is checked on, and torch
    reads from, the same open file, so a newer save that deletes it cannot swap it in between.
    A file that is not there raises FileNotFoundError (the caller decides what that means)."""
    path = root / ref["file"]
    with open_regular(path) as handle:
        if ref["sha256"] is not None:
            digest = hashlib.sha256()
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            if digest.hexdigest() != ref["sha256"]:
                raise ModelError(
                    f"{path} does not belong to {root / 'model.json'} (SHA-256 differs): the file was "
                    "modified or damaged; restore the model directory as saved, or retrain",
                    file=str(path),
                )
            handle.seek(0)
        return load_tensor_file(path, what, map_location, handle=handle)


def named_files(document: dict[str, Any]) -> set[str]:
    """The files a (normalised) model.json document names."""
    names = {document["weights"]["file"]}
    if document.get("checkpoint") is not None:
        names.add(document["checkpoint"]["file"])
    metadata = document["metadata"]
    names.update(metadata[k]["file"] for k in PART_KEYS if is_reference(metadata.get(k)))
    return names


def remove_unnamed(root: Path, keep: set[str]) -> None:
    """After a commit: delete the model files (tensor files, codec parts, the fixed names of
    format 1-2) that the committed model.json does not name. Only lfengine's own names are
    considered; anything else in the directory is left alone."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            if entry.name in keep or not _OWNED.fullmatch(entry.name):
                continue
            if entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
