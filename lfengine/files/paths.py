"""Paths from requests and model files are untrusted: check them before anything is read.

A path names a regular file (never a device such as /dev/zero, a FIFO that blocks until a
writer comes, a socket or a directory), contains no NUL byte, and can be encoded for the file
system (a lone surrogate from a JSON string cannot). Files read whole (meta files, model.json)
are also capped in size. Every refusal is an ``UnusablePath``, a kind of OSError, so the
callers' existing "cannot read <file>" handling turns it into their own typed error.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from lfengine.errors import OptionError

#: Files read whole into memory. LF meta files of large corpora are tens of MB (their
#: vocabulary counts); model.json holds the vocabularies too.
MAX_META_BYTES = 256 * 2**20
MAX_MODEL_JSON_BYTES = 1024 * 2**20
MAX_CONFIG_BYTES = 16 * 2**20  # a settings or options file: anything larger is not one

_OPEN_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
)


class UnusablePath(OSError):
    """A path that cannot be, or must not be, read as a regular file; ``strerror`` says why."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(reason)
        self.strerror = reason
        self.filename = path


#: The longest file name and path POSIX systems take; longer ones fail with "File name too long".
NAME_MAX = 255
PATH_MAX = 4096


def path_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot name a file at all (NUL byte, not encodable), or None."""
    raw = os.fspath(path)
    if ("\x00" if isinstance(raw, str) else b"\x00") in raw:
        return "a NUL byte in the path"
    try:
        encoded = os.fsencode(raw)
    except UnicodeEncodeError as exc:
        return f"a character the file system cannot encode ({exc.object[exc.start]!r}) in the path"
    longest = max(encoded.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        return f"a name of {len(longest)} bytes in the path (the file system allows {NAME_MAX})"
    if len(encoded) > PATH_MAX:
        return f"a path of {len(encoded)} bytes (the system allows {PATH_MAX})"
    return None


def check_path(path: str | os.PathLike) -> None:
    """Raise UnusablePath when ``path`` cannot name a file (see path_problem)."""
    problem = path_problem(path)
    if problem is not None:
        raise UnusablePath(path, problem)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def open_regular(path: str | os.PathLike, *, max_bytes: int | None = None) -> BinaryIO:
    """Open a regular file for binary reading, or raise OSError (UnusablePath for our refusals).

    The file is opened non-blocking, so a FIFO cannot hang the engine, and checked with fstat on
    the open descriptor, so what is checked is what is read.
    """
    check_path(path)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnusablePath(path, f"{_kind(info.st_mode)} where a regular file is needed")
        if max_bytes is not None and info.st_size > max_bytes:
            raise UnusablePath(path, f"a file of {info.st_size} bytes, over the limit of {max_bytes} bytes")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_bytes(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The whole content of a regular file of at most ``max_bytes`` bytes."""
    with open_regular(path, max_bytes=max_bytes) as handle:
        # read(n) allocates n bytes first: ask for the file's size (plus one, to see growth),
        # not for the limit (256 MiB for a meta file of a few kB).
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(min(size, max_bytes) + 1)
        if len(data) > size:  # it grew after the check: read on, to the limit
            data += handle.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:  # it grew after the check
        raise UnusablePath(path, f"a file of more than the limit of {max_bytes} bytes")
    return data


def output_problem(path: str | os.PathLike) -> str | None:
    """Why a file cannot be written at ``path`` (checked before the work that produces it), or None.

    Commands that write a file the user named (plot -o, evaluate --predictions, eject -o) say
    this in one line instead of failing with a traceback after the work is done.
    """
    problem = path_problem(path)
    if problem is not None:
        return problem
    raw = os.fspath(path)
    folder = os.path.dirname(raw) or "."
    if os.path.isdir(raw):
        return f"{raw} is a directory; name a file"
    if not os.path.isdir(folder):
        return f"the folder {folder} does not exist; create it first or choose another"
    if not os.access(folder, os.W_OK):
        return f"the folder {folder} is not writable here; choose a writable folder"
    return None


def write_failure(path: str | os.PathLike, exc: OSError) -> str:
    """A one-line reason for a failed write of ``path``: output_problem's, else the OS's own."""
    return output_problem(path) or exc.strerror or str(exc)


def check_output(path: str | os.PathLike, what: str) -> None:
    """Refuse, before the work, an output file that could not be written: ``what: reason``."""
    problem = output_problem(path)
    if problem is not None:
        raise OptionError(f"{what}: {problem}")


@contextlib.contextmanager
def writing_output(path: str | os.PathLike, what: str) -> Iterator[None]:
    """The write of an output file checked by check_output: a failure is one line, no traceback."""
    try:
        yield
    except OSError as exc:
        raise OptionError(f"{what}: {write_failure(path, exc)}") from None
