"""Crash- and tamper-safe file primitives for model files: atomic writes, strict JSON, and tensor
files read without unpickling objects.

Split from store.py (which defines what goes into a model directory) because these rules hold
for every file lfengine writes or reads back, whatever its content.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import re
import secrets
import stat
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO

import torch

from lfengine.errors import ModelError

PathLike = str | os.PathLike


# ---------------------------------------------------------------------------------------------
# Atomic writes


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable; not every platform or file system can open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _RecordedWrites:
    """A binary file that remembers the first OSError its writes raised."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._handle.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def atomic_write(target: PathLike, write: Callable[[BinaryIO], None]) -> str:
    """Write a file through ``write(f)`` so that ``target`` is only ever old or new, never partial.

    The data go to a temporary file in the target's directory (same file system, so the rename
    is atomic), are flushed and fsynced, and then renamed over the target. If ``write`` raises,
    the temporary file is removed and the target is untouched. Returns the SHA-256 hex digest of
    the written bytes.
    """
    target = Path(target)
    temp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            writes = _RecordedWrites(handle)
            try:
                write(writes)  # type: ignore[arg-type]
            except Exception as exc:
                # torch.save turns a failed write (a full disk) into a RuntimeError: raise the
                # OSError itself, which callers report as the file-system problem it is.
                if writes.error is not None and not isinstance(exc, OSError):
                    raise writes.error from exc
                raise
            handle.flush()
            os.fsync(handle.fileno())
        digest = sha256_file(temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)
    return digest


def atomic_write_text(target: PathLike, text: str, *, executable: bool = False) -> None:
    """``atomic_write`` of UTF-8 text, made executable (u+x, g+x, o+x) when asked: its temporary
    file has a fresh name opened with O_EXCL, so a link planted at a fixed temporary name (or
    at the target) is never followed."""

    def write(handle: BinaryIO) -> None:
        handle.write(text.encode("utf-8"))
        if executable:
            mode = os.fstat(handle.fileno()).st_mode
            os.fchmod(handle.fileno(), mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    atomic_write(target, write)


# ---------------------------------------------------------------------------------------------
# No writes through links: a link planted in a model directory (train.log -> ~/.bashrc) would
# make lfengine write into whatever it points to.


def link_refusal(path: PathLike) -> ModelError:
    return ModelError(
        f"{path} is a symbolic link: lfengine does not write through links in a model directory "
        "(the file it points to would be overwritten or appended to); remove the link",
        file=str(path),
    )


def refuse_symlinks(directory: PathLike) -> None:
    """Refuse a model directory that holds a symbolic link (before a training writes into it)."""
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        return  # missing (created later) or unreadable (the write reports it)
    for entry in entries:
        if entry.is_symlink():
            raise link_refusal(entry.path)


_APPEND_FLAGS = os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def open_append(path: PathLike, mode: str = "a") -> IO[Any]:
    """Open ``path`` to append ("a" text UTF-8, "ab", or "a+b" also readable), never through a
    symbolic link and only if it is a regular file (a FIFO would block, a device would fill)."""
    flags = _APPEND_FLAGS | (os.O_RDWR if "+" in mode else os.O_WRONLY) | getattr(os, "O_NONBLOCK", 0)
    not_regular = ModelError(f"{path} is not a regular file; lfengine appends only to files", file=str(path))
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as error:
        if os.path.islink(path):
            raise link_refusal(path) from None
        if os.path.lexists(path) and not os.path.isfile(path):  # a FIFO without a reader: ENXIO
            raise not_regular from None
        raise error
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise not_regular
        os.set_blocking(fd, True)
        if "b" in mode:
            return os.fdopen(fd, mode)
        return os.fdopen(fd, mode, encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")  # as atomic_write names them


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or cannot tell: leave its files alone
    return True


def remove_stale_temp_files(directory: PathLike) -> list[Path]:
    """Delete the temporary files of atomic writes whose writer is gone (killed mid-write).

    Only names atomic_write makes are considered, and only when the process id in the name is
    not alive, so a write in progress by a live process is never touched. Returns what was removed.
    """
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        if _process_alive(int(match.group(1))):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    if removed:
        logging.getLogger("lfengine.safe_io").info(
            "removed %d temporary file(s) left by an interrupted write in %s", len(removed), directory
        )
    return removed


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks so large weight files never sit twice in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Strict JSON


def check_json(value: Any, where: str) -> None:
    """Refuse what strict JSON cannot store exactly, naming where it is."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ModelError(f"{where} is {value}: model files are strict JSON, which has no NaN or infinity")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ModelError(
                    f"{where} has the key {key!r} of type {type(key).__name__}: JSON object keys must be "
                    "strings (JSON would silently turn it into one)"
                )
            check_json(item, f"{where}[{key!r}]")
        return
    raise ModelError(
        f"{where} is of type {type(value).__name__}, which JSON cannot store "
        "(convert numpy scalars with .item() and arrays with .tolist())"
    )


def to_strict_json(value: Any, where: str = "value") -> str:
    """Serialise ``value`` as one line of strict ASCII JSON, or raise ModelError naming the bad part.

    ASCII escapes keep lone surrogates (legal in LF JSON strings) writable in any encoding.
    """
    check_json(value, where)
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


def reject_json_constant(name: str) -> Any:
    """``parse_constant`` hook: Python's json would otherwise accept NaN and Infinity."""
    raise ValueError(f"{name} is not strict JSON")


def parse_strict_json(text: str, file: Path) -> Any:
    """Parse JSON that must be strict; a failure is a ModelError naming the file."""
    try:
        return json.loads(text, parse_constant=reject_json_constant)
    except ValueError as error:
        raise ModelError(f"{file} is not valid strict JSON: {error}", file=str(file)) from error


# ---------------------------------------------------------------------------------------------
# Tensor files


_UNPICKLER_REASON = re.compile(r"WeightsUnpickler error:\s*(.+?)(?:\s+Please use|\n|$)")


def load_tensor_file(
    path: Path, what: str, map_location: str | torch.device, *, handle: BinaryIO | None = None
) -> Any:
    """torch.load with weights_only=True; any refusal or corruption becomes a ModelError.
    ``handle``: read from this open file of ``path`` rather than opening it again."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(handle or path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        match = _UNPICKLER_REASON.search(str(error))
        reason = match.group(1).strip() if match else "not a torch tensor file"
        raise ModelError(
            f"{path} is refused: it cannot be read as plain tensors ({reason}). lfengine loads {what} "
            "only with weights_only=True, because unpickling arbitrary Python objects can run code; "
            "files made by torch.save of whole modules or other objects (like the old PyTorch "
            "wrapper's) are not accepted. Retrain the model with lfengine.",
            file=str(path),
        ) from error
    except Exception as error:
        first_line = next(iter(str(error).splitlines()), "")
        raise ModelError(
            f"{path} cannot be read ({type(error).__name__}: {first_line}); "
            f"the {what} file is damaged or not a torch file. Retrain the model.",
            file=str(path),
        ) from error


def check_state_dict(state_dict: Any, where: str) -> None:
    """A state dict is a flat mapping of parameter names to tensors, nothing else."""
    if not isinstance(state_dict, dict):
        raise ModelError(f"{where} must be a dict of name -> tensor, got {type(state_dict).__name__}")
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise ModelError(f"{where} has the non-string key {key!r}")
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"{where}[{key!r}] is a {type(value).__name__}, not a tensor")


_PLAIN_CONTAINERS = (dict, OrderedDict)
_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)


def check_tensor_tree(value: Any, where: str) -> None:
    """Only what torch.load(weights_only=True) reads back: tensors, plain containers, scalars."""
    if value is None or type(value) in (str, bool, int, float) or type(value) in _PLAIN_TENSORS:
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            check_tensor_tree(item, f"{where}[{i}]")
        return
    if type(value) in _PLAIN_CONTAINERS:
        for key, item in value.items():
            if type(key) not in (str, int):
                raise ModelError(
                    f"{where} has the key {key!r} of type {type(key).__name__}; use str or int keys"
                )
            check_tensor_tree(item, f"{where}[{key!r}]")
        return
    raise ModelError(
        f"{where} is of type {type(value).__name__}: a checkpoint holds only tensors, dicts, lists, "
        "tuples, str, int, float, bool and None (convert numpy values with torch.from_numpy or .tolist())"
    )
