"""The model directory: what a trained model is on disk, and how it is written and read safely.

Layout of a model directory::

    model.json      format name and version, lfengine/torch versions, SHA-256 of weights.pt,
                    and the caller's metadata (feature spec, vocabularies, labels, architecture,
                    hyperparameters, training history). Strict JSON, ASCII only.
    codec-*.json    (format 2) the vocabularies, written once per training run; model.json
                    refers to it by name and SHA-256 (lfengine/model_parts.py).
    weights.pt      the network's state dict: a flat dict of name -> tensor, nothing else.
    checkpoint.pt   (optional) what resuming needs: weights, optimizer, scheduler, RNG states,
                    counters; only tensors and plain containers/scalars.
    metrics.jsonl   one JSON object per validation, appended as training goes.
    train.log       the training log.

Nothing here is a pickle of Python objects: tensor files are read with
``torch.load(..., weights_only=True)``, so loading an untrusted model cannot run code (the old
wrapper's models could: reference-wrapper.md §12.3 S1). Every file is written to a temporary
name in the same directory, fsynced and renamed over the target, so a crash leaves either the old
file or the new one, never a half-written one. The weights digest in model.json ties the two
files together: a weights.pt that does not belong to its model.json is refused, not silently used.
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
from lfengine.model_parts import remove_unreferenced_parts, resolve_parts
from lfengine.paths import MAX_MODEL_JSON_BYTES, read_regular_bytes
from lfengine.safe_io import (
    PathLike,
    atomic_write,
    check_json,
    check_state_dict,
    check_tensor_tree,
    load_tensor_file,
    open_append,
    parse_strict_json,
    sha256_file,
    to_strict_json,
)

log = logging.getLogger(__name__)

FORMAT_NAME = "lfengine-model"
FORMAT_VERSION = 2  # 2: large metadata parts (the codec) may live in files of their own
SUPPORTED_FORMAT_VERSIONS = (1, 2)
CHECKPOINT_FORMAT_NAME = "lfengine-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"

# GATE passes a file prefix (<dataDir>/FileJsonPyTorch.model); the model directory is prefix + this.
PREFIX_DIR_SUFFIX = ".d"
# Files the old PyTorch wrapper wrote next to its prefix (pickles; never loaded, only recognised).
OLD_WRAPPER_SUFFIXES = (".module.pytorch", ".wrapper.pickle")


@dataclass(frozen=True)
class ModelPaths:
    """The files of one model directory."""

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
    if not isinstance(document.get("metadata"), dict) or not isinstance(document.get("weights_sha256"), str):
        raise ModelError(
            f"{paths.model_json} lacks 'metadata' or 'weights_sha256'", file=str(paths.model_json)
        )
    return document


def save_model_dir(model_dir: PathLike, metadata: dict, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write (or replace) a model: weights.pt first, then model.json with the weights' digest.

    Everything is checked before anything is written, so a refused model leaves the directory
    as it was. Tensors are stored on the CPU. Returns the directory.
    """
    paths = model_paths(model_dir)
    check_state_dict(state_dict, "state_dict")
    if not isinstance(metadata, dict):
        raise ModelError(f"metadata must be a dict, got {type(metadata).__name__}")
    check_json(metadata, "metadata")
    if paths.model_json.exists():
        refuse_foreign_model_json(paths.model_json)
    tensors = {name: tensor.detach().cpu() for name, tensor in state_dict.items()}
    with file_system_errors("write the model to", paths.root):
        paths.root.mkdir(parents=True, exist_ok=True)
        header = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "lfengine_version": __version__,
            "torch_version": str(torch.__version__),
            "weights_sha256": atomic_write(paths.weights, lambda handle: torch.save(tensors, handle)),
            "metadata": metadata,
        }
        text = json.dumps(header, indent=1, ensure_ascii=True, allow_nan=False) + "\n"
        atomic_write(paths.model_json, lambda handle: handle.write(text.encode("ascii")))
        remove_unreferenced_parts(paths.root, metadata)
    log.debug("saved model to %s (%d tensors)", paths.root, len(tensors))
    return paths.root


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


def load_model_dir(
    model_dir: PathLike, map_location: str | torch.device = "cpu"
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a model directory: its metadata and its state dict (tensors only, weights_only)."""
    document = read_model_json(model_dir)
    paths = model_paths(model_dir)
    if not paths.weights.is_file():
        raise _missing(
            paths.weights,
            "the model directory is incomplete (copied without it?); copy the whole directory, or retrain",
        )
    with file_system_errors("read", paths.weights):
        digest = sha256_file(paths.weights)
    if digest != document["weights_sha256"]:
        raise ModelError(
            f"{paths.weights} does not belong to {paths.model_json} (SHA-256 differs): the files were "
            "mixed up, modified, or a save was interrupted between them; retrain, or restore both "
            "files together",
            file=str(paths.weights),
        )
    state_dict = load_tensor_file(paths.weights, "model weights", map_location)
    check_state_dict(state_dict, str(paths.weights))
    with file_system_errors("read", paths.root):
        metadata = resolve_parts(paths.root, document["metadata"])
    return metadata, dict(state_dict)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(model_dir: PathLike, payload: dict) -> Path:
    """Atomically write checkpoint.pt for resuming; refuses anything weights_only could not read back.

    ``payload`` is the trainer's: typically model and optimizer/scheduler state dicts,
    random generator states (lfengine.train_state) and epoch/batch counters. Returns the checkpoint path.
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
    with file_system_errors("write the checkpoint", paths.checkpoint):
        paths.root.mkdir(parents=True, exist_ok=True)
        atomic_write(paths.checkpoint, lambda handle: torch.save(document, handle))
    return paths.checkpoint


def load_checkpoint(model_dir: PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read checkpoint.pt (weights_only) and return the payload given to save_checkpoint."""
    paths = model_paths(model_dir)
    if not paths.checkpoint.is_file():
        raise _missing(
            paths.checkpoint,
            "there is nothing to resume in this model directory; train without resume to start afresh",
        )
    document = load_tensor_file(paths.checkpoint, "checkpoints", map_location)
    _check_format(document, paths.checkpoint, CHECKPOINT_FORMAT_NAME, (CHECKPOINT_FORMAT_VERSION,))
    if not isinstance(document.get("payload"), dict):
        raise ModelError(f"{paths.checkpoint} has no payload", file=str(paths.checkpoint))
    return document["payload"]


# ---------------------------------------------------------------------------------------------
# Metrics log


def append_metrics(model_dir: PathLike, record: dict) -> None:
    """Append one validation record to metrics.jsonl as a single strict-JSON line, flushed."""
    paths = model_paths(model_dir)
    line = to_strict_json(record, "metrics record") + "\n"
    with file_system_errors("append to", paths.metrics):
        paths.root.mkdir(parents=True, exist_ok=True)
        with open_append(paths.metrics, "a+b") as handle:  # never through a link
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # an earlier append was cut short: keep its debris apart
                    line = "\n" + line
            handle.write(line.encode("ascii"))
            handle.flush()
