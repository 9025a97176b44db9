"""The model directory: what a trained model is on disk, and how it is written and read safely.

Layout of a model directory::

    model.json      format name and version, lfengine/torch versions, the names and SHA-256 of
                    the files below that make up this model, and the caller's metadata (feature
                    spec, labels, architecture, hyperparameters, training history). Strict JSON,
                    ASCII only.
    codec-*.json    (format 2) the vocabularies, written once per training run; model.json
                    refers to it by name and SHA-256 (lfengine/storage/model_parts.py). Format 4
                    stores the input feature kinds as an ordered list of parts
                    (lfengine/data/codec_parts.py).
    weights-*.pt    (format 3; weights.pt before) the network's state dict: a flat dict of
                    name -> tensor, nothing else.
    checkpoint-*.pt (format 3; checkpoint.pt before; optional) what resuming needs: weights,
                    optimizer, scheduler, RNG states, counters; only tensors and plain
                    containers/scalars.
    metrics.jsonl   one JSON object per validation, appended as training goes.
    train.log       the training log.
    .lock           held (flock) by the one training that writes the directory (training/model_lock.py).

Nothing here is a pickle of Python objects: tensor files are read with
``torch.load(..., weights_only=True)``, so loading an untrusted model cannot run code (the old
wrapper's models could: reference-wrapper.md §12.3 S1). Every file is written to a temporary
name in the same directory, fsynced and renamed over the target, so a crash leaves either the old
file or the new one, never a half-written one. The files model.json names are named by their
content and never rewritten (lfengine/storage/model_files.py); they are written first and model.json
last, so its rename is the one commit point of a save: a crash anywhere leaves the previous
model or the new one, whole. A file that does not match its digest in model.json is refused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lfengine import __version__
from lfengine.errors import ModelError
from lfengine.files.paths import MAX_MODEL_JSON_BYTES, read_regular_bytes
from lfengine.files.safe_io import (
    PathLike,
    atomic_write,
    check_json,
    check_state_dict,
    check_tensor_tree,
    parse_strict_json,
)
from lfengine.storage import model_files
from lfengine.storage.model_parts import resolve_parts

log = logging.getLogger("lfengine.store")

FORMAT_NAME = "lfengine-model"
# 2: large metadata parts (the codec) may live in files of their own; 3: the weights and the
# checkpoint are content-named files that model.json names (a save commits with one rename);
# 4: the codec stores its input feature kinds as an ordered list of parts (data/codec_parts.py)
FORMAT_VERSION = 4
SUPPORTED_FORMAT_VERSIONS = (1, 2, 3, 4)
CHECKPOINT_FORMAT_NAME = "lfengine-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"  # format 1-2; format 3 names its files in model.json
CHECKPOINT_FILE = "checkpoint.pt"  # format 1-2
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"

# GATE passes a file prefix (<dataDir>/FileJsonPyTorch.model); the model directory is prefix + this.
PREFIX_DIR_SUFFIX = ".d"
# Files the old PyTorch wrapper wrote next to its prefix (pickles; never loaded, only recognised).
OLD_WRAPPER_SUFFIXES = (".module.pytorch", ".wrapper.pickle")


@dataclass(frozen=True)
class ModelPaths:
    """The files of one model directory (``weights`` and ``checkpoint``: the fixed names of
    format 1-2; a format-3 model.json names its own)."""

    root: Path
    model_json: Path
    weights: Path
    checkpoint: Path
    metrics: Path
    log: Path


def model_paths(model_dir: PathLike) -> ModelPaths:
    """The file paths of ``model_dir``, whether or not they exist yet."""
    root = Path(model_dir)
    files = (MODEL_FILE, WEIGHTS_FILE, CHECKPOINT_FILE, METRICS_FILE, LOG_FILE)
    return ModelPaths(root, *(root / name for name in files))


def model_dir_for_prefix(prefix: PathLike) -> Path:
    """The model directory for a GATE model prefix: the prefix with ``.d`` appended.

    GATE only ever passes a prefix such as ``/data/FileJsonPyTorch.model`` and never looks at
    the files; the old wrapper put ``<prefix>.module.pytorch`` and ``<prefix>.wrapper.pickle``
    there. The drop-in keeps the whole model in ``/data/FileJsonPyTorch.model.d/``, next to
    (never over) any old files.
    """
    text = os.fspath(prefix).rstrip("/" + os.sep)
    if not text:
        raise ModelError(f"model prefix {os.fspath(prefix)!r} names no file")
    return Path(text + PREFIX_DIR_SUFFIX)


# ---------------------------------------------------------------------------------------------
# Model directory


@contextlib.contextmanager
def file_system_errors(action: str, path: Path) -> Iterator[None]:
    """A full disk or a missing permission is the user's to fix: say so as a ModelError."""
    try:
        yield
    except OSError as error:
        raise ModelError(f"cannot {action} {path}: {error.strerror or error}", file=str(path)) from error


def check_writable(model_dir: PathLike) -> None:
    """Refuse, before any work is done, a model directory that could not be created or written
    (a read-only file system, no write permission): training would only fail at its first save."""
    path = Path(os.path.abspath(model_dir))
    existing = path
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ModelError(f"cannot write the model to {path}: {existing} is not a directory", file=str(path))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ModelError(
            f"cannot write the model to {path}: {existing} is read-only here; choose a writable directory",
            file=str(path),
        )


def _missing(path: Path, what_to_do: str) -> ModelError:
    return ModelError(f"{path} is missing: {what_to_do}", file=str(path))


def _old_wrapper_files(model_dir: Path) -> list[Path]:
    """Files of the old wrapper next to the GATE prefix this directory stands for, if any."""
    name = model_dir.name
    if not name.endswith(PREFIX_DIR_SUFFIX):
        return []
    prefix = model_dir.with_name(name[: -len(PREFIX_DIR_SUFFIX)])
    return [p for p in (Path(str(prefix) + s) for s in OLD_WRAPPER_SUFFIXES) if p.exists()]


def _check_format(document: Any, file: Path, name: str, supported: tuple[int, ...]) -> None:
    if not isinstance(document, dict) or document.get("format") != name:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ModelError(
            f"{file} is not an lfengine file of format {name!r} (found format {found!r})", file=str(file)
        )
    version = document.get("format_version")
    if type(version) is not int or version not in supported:
        newer = type(version) is int and version > max(supported)
        advice = "upgrade lfengine to load it" if newer else "retrain the model with this lfengine"
        raise ModelError(
            f"{file} has format version {version!r}; this lfengine (version {__version__}) supports "
            f"format version{'s' if len(supported) > 1 else ''} {', '.join(map(str, supported))}: {advice}",
            file=str(file),
            found=version,
            supported=list(supported),
        )


def read_model_json(model_dir: PathLike) -> dict:
    """The checked content of model.json (format, versions, weights digest, ``metadata``)."""
    paths = model_paths(model_dir)
    if not paths.root.is_dir():
        old = _old_wrapper_files(paths.root)
        if old:
            raise ModelError(
                f"model directory {paths.root} does not exist, but {old[0]} does: that is a model of the "
                "old PyTorch wrapper, a Python pickle that lfengine never loads (it could run arbitrary "
                "code). Retrain the model with lfengine.",
                file=str(paths.root),
            )
        raise ModelError(
            f"model directory {paths.root} does not exist: train a model into it first, or give the "
            "directory that contains model.json",
            file=str(paths.root),
        )
    if not paths.model_json.is_file():
        raise _missing(
            paths.model_json,
            "this is not an lfengine model directory, or training never saved a model into it; "
            "train (again) into this directory",
        )
    with file_system_errors("read", paths.model_json):
        text = read_regular_bytes(paths.model_json, MAX_MODEL_JSON_BYTES).decode("utf-8", errors="replace")
    document = parse_strict_json(text, paths.model_json)
    _check_format(document, paths.model_json, FORMAT_NAME, SUPPORTED_FORMAT_VERSIONS)
    return model_files.normalised(document, paths.model_json)


def save_model_dir(
    model_dir: PathLike,
    metadata: dict,
    state_dict: dict[str, torch.Tensor],
    *,
    checkpoint: dict[str, Any] | None = None,
) -> Path:
    """Write (or replace) a model: its weights file first, then model.json naming it (and
    ``checkpoint``, a reference save_checkpoint returned, if any). Returns the directory.

    Everything is checked before anything is written, so a refused model leaves the directory
    as it was. Tensors are stored on the CPU.
    """
    _check_metadata(model_dir, metadata)
    _write_model_json(model_dir, metadata, save_weights(model_dir, state_dict), checkpoint)  # checks it first
    log.debug("saved model to %s (%d tensors)", model_dir, len(state_dict))
    return Path(model_dir)


def _check_metadata(model_dir: PathLike, metadata: dict, *, foreign: bool = True) -> None:
    if not isinstance(metadata, dict):
        raise ModelError(f"metadata must be a dict, got {type(metadata).__name__}")
    check_json(metadata, "metadata")
    paths = model_paths(model_dir)
    if foreign and paths.model_json.exists():
        refuse_foreign_model_json(paths.model_json)


def save_weights(model_dir: PathLike, state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Write a state dict (on the CPU) to its content-named weights file, not yet committed."""
    check_state_dict(state_dict, "state_dict")
    tensors = {name: tensor.detach().cpu() for name, tensor in state_dict.items()}
    root = Path(model_dir)
    with file_system_errors("write the model to", root):
        root.mkdir(parents=True, exist_ok=True)
        return model_files.save_tensors(root, "weights", tensors)


def commit_model(
    model_dir: PathLike, metadata: dict, weights: dict[str, Any], checkpoint: dict[str, Any] | None
) -> None:
    """The commit point of a save: model.json naming files already written, replaced by one
    rename; then the files of earlier commits that it does not name are deleted.

    For the training's commits (several per epoch): the run refused a model.json it did not
    write before it started (training_run) and holds the directory's lock, so the file is not
    read again here."""
    _check_metadata(model_dir, metadata, foreign=False)
    _write_model_json(model_dir, metadata, weights, checkpoint)


def _write_model_json(
    model_dir: PathLike, metadata: dict, weights: dict[str, Any], checkpoint: dict[str, Any] | None
) -> None:
    paths = model_paths(model_dir)
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "lfengine_version": __version__,
        "torch_version": str(torch.__version__),
        "weights": weights,
        "checkpoint": checkpoint,
        "metadata": metadata,
    }
    text = json.dumps(header, indent=1, ensure_ascii=True, allow_nan=False) + "\n"
    with file_system_errors("write the model to", paths.root):
        atomic_write(paths.model_json, lambda handle: handle.write(text.encode("ascii")))
    model_files.remove_unnamed(paths.root, model_files.named_files(header))


def refuse_foreign_model_json(file: Path) -> None:
    """Never overwrite a model.json that lfengine did not write."""
    try:
        document = json.loads(read_regular_bytes(file, MAX_MODEL_JSON_BYTES).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise ModelError(
            f"{file} exists and is not an lfengine model; refusing to overwrite it: choose another "
            "model directory",
            file=str(file),
        )


#: Reads of model.json per load: each retry means a training committed during the last read.
_LOAD_ATTEMPTS = 5


def load_model_dir(
    model_dir: PathLike, map_location: str | torch.device = "cpu"
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a model directory: its metadata and its state dict (tensors only, weights_only).

    model.json is read once and exactly the files it names are opened. A training may commit a
    newer model meanwhile and delete those files: then the newer model.json is read and loaded
    instead, so a reader always gets one whole committed model."""
    paths = model_paths(model_dir)
    for attempt in range(_LOAD_ATTEMPTS):
        generation = model_files.generation(paths.model_json)
        document = read_model_json(model_dir)
        try:
            return _load_committed(paths, document, map_location)
        except ModelError:
            if attempt + 1 == _LOAD_ATTEMPTS or model_files.generation(paths.model_json) == generation:
                raise
            log.debug("%s was saved anew while it was read: reading the new model", paths.root)
    raise AssertionError("unreachable")


def _load_committed(
    paths: ModelPaths, document: dict, map_location: str | torch.device
) -> tuple[dict, dict[str, torch.Tensor]]:
    ref = document["weights"]
    weights = paths.root / ref["file"]
    try:
        with file_system_errors("read", weights):
            state_dict = model_files.load_tensors(paths.root, ref, "model weights", map_location)
    except ModelError as error:
        if isinstance(error.__cause__, FileNotFoundError):
            raise _missing(
                weights,
                f"{paths.model_json} names it, but the model directory is incomplete (copied without "
                "it?); copy the whole directory, or retrain",
            ) from None
        raise
    check_state_dict(state_dict, str(weights))
    with file_system_errors("read", paths.root):
        metadata = resolve_parts(paths.root, document["metadata"])
    return metadata, dict(state_dict)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(model_dir: PathLike, payload: dict) -> dict[str, Any]:
    """Write a checkpoint for resuming to its content-named file; refuses anything weights_only
    could not read back. It counts once a model.json names it (commit_model).

    ``payload`` is the trainer's: typically model and optimizer/scheduler state dicts,
    random generator states (lfengine.storage.train_state) and epoch/batch counters. Returns the
    checkpoint's reference.
    """
    paths = model_paths(model_dir)
    if not isinstance(payload, dict):
        raise ModelError(f"checkpoint payload must be a dict, got {type(payload).__name__}")
    document = {
        "format": CHECKPOINT_FORMAT_NAME,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "lfengine_version": __version__,
        "torch_version": str(torch.__version__),
        "payload": payload,
    }
    check_tensor_tree(payload, "checkpoint")
    with file_system_errors("write the checkpoint to", paths.root):
        paths.root.mkdir(parents=True, exist_ok=True)
        return model_files.save_tensors(paths.root, "checkpoint", document)


def committed_file(model_dir: PathLike, kind: str) -> Path | None:
    """The ``weights`` or ``checkpoint`` file the committed model.json names (None: none)."""
    ref = read_model_json(model_dir).get(kind)
    return None if ref is None else Path(model_dir) / ref["file"]


def checkpoint_reference(model_dir: PathLike) -> dict[str, Any] | None:
    """The checkpoint the committed model.json names, if there is one and its file is there."""
    paths = model_paths(model_dir)
    if not paths.model_json.is_file():
        return None
    ref = read_model_json(model_dir).get("checkpoint")
    return ref if ref is not None and (paths.root / ref["file"]).is_file() else None


def load_checkpoint(model_dir: PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read the checkpoint model.json names (weights_only): the payload given to save_checkpoint."""
    paths = model_paths(model_dir)
    ref = checkpoint_reference(model_dir)
    if ref is None:
        raise ModelError(
            f"{paths.root} holds no checkpoint: there is nothing to resume in this model directory; "
            "train without resume to start afresh",
            file=str(paths.root),
        )
    file = paths.root / ref["file"]
    with file_system_errors("read", file):
        document = model_files.load_tensors(paths.root, ref, "checkpoints", map_location)
    _check_format(document, file, CHECKPOINT_FORMAT_NAME, (CHECKPOINT_FORMAT_VERSION,))
    if not isinstance(document.get("payload"), dict):
        raise ModelError(f"{file} has no payload", file=str(file))
    return document["payload"]
