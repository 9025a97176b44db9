"""One training at a time per model directory.

Two trainings into one directory used to both finish "successfully" with the model gone: each
save deleted the files of the other's commits. A training now holds an exclusive ``flock`` on
``<model_dir>/.lock`` from before it reads the directory until its last write; a second one is
refused at once with ModelInUse (protocol code 1022) instead of waiting. The kernel drops the
lock when its holder exits, however it exits, so a killed training never leaves the directory
locked. Readers (apply, describe, evaluate) take no lock: every save commits whole
(lfengine.storage.store), so they always see one complete model.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from lfengine.errors import ModelInUse
from lfengine.storage.store import file_system_errors

LOCK_FILE = ".lock"


@contextlib.contextmanager
def training_lock(model_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the model directory's lock (creating the directory if needed) while the block runs.
    A directory this created and left empty is removed again, so a training refused early
    leaves nothing behind."""
    root = Path(model_dir)
    created = not root.exists()
    with file_system_errors("lock the model directory", root):  # a planted .lock symlink: ELOOP
        root.mkdir(parents=True, exist_ok=True)
        fd = _acquire(root)
    try:
        yield
    finally:
        try:
            if created and [p.name for p in root.iterdir()] == [LOCK_FILE]:
                os.unlink(root / LOCK_FILE)  # still locked: nobody else holds this file
                root.rmdir()
        except OSError:
            pass
        os.close(fd)


def _acquire(root: Path) -> int:
    path = root / LOCK_FILE
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(3):
        fd = os.open(path, flags, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise ModelInUse(
                f"model directory {root} is in use: another training{holder} is writing it. Wait "
                "for that training to finish (or cancel it), or train into another directory.",
                file=str(root),
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except OSError:
            same = False
        if same:  # not a lock file its previous holder removed after we opened it
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            return fd
        os.close(fd)
    raise ModelInUse(f"model directory {root} is in use: its lock file keeps changing", file=str(root))


def _read_holder(fd: int) -> str:
    """`` (process N)`` from the lock file, as far as it can be read."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (process {text})" if text.isdigit() else ""
