"""The settings of an lfengine process that serves or trains: allocator, garbage collector,
torch threads, the protocol's hold on stdout (file descriptor 1) and termination signals.

The resident server (lfengine.serving.server), the legacy apply loop of the GATE drop-in
(lfengine.gate.commands) and every training (lfengine.service.train) take them from here, so
that each rule about the process lives in one place.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

from lfengine.runtime.allocator import (
    SERVING_KERNEL_CACHE,
    bound_kernel_cache,
    reuse_freed_memory,
    training_memory,
)

log = logging.getLogger("lfengine.process")

GC_THRESHOLDS = (50_000, 20, 20)  # Python's default is (700, 10, 10)


def serving_process() -> None:
    """A process that answers requests until it ends: keep freed memory and oneDNN's kernels
    for the repeated shapes of apply-batch (allocator.py), collect rarely."""
    reuse_freed_memory()
    bound_kernel_cache(SERVING_KERNEL_CACHE)
    relax_garbage_collection()


def relax_garbage_collection(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Run Python's cycle collector far less often than by default.

    Decoding one large request creates hundreds of thousands of lists and strings, all alive
    until the response is sent. With the default thresholds the collector keeps traversing
    them, full collections included, while they are built: measured, every second or third
    apply-batch of 1000 sequences took 20 % longer. Requests make no reference cycles worth
    collecting promptly, so collections can wait for tens of thousands of new objects.
    """
    gc.set_threshold(*thresholds)


@contextlib.contextmanager
def training_process(threads: int | None) -> Iterator[None]:
    """A training run's process settings (allocator, torch threads), undone afterwards: every
    process that trains (CLI, protocol server, GATE scripts) keeps freed memory for reuse."""
    with training_memory(), torch_threads(threads):
        yield


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with this many torch threads, then restore the previous setting (it is process-wide,
    and one request must not change the threads of the requests after it)."""
    if not threads:
        yield
        return
    import torch  # only a training that sets threads needs it here

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def protocol_output(stdout_binary: BinaryIO) -> Iterator[BinaryIO]:
    """Reserve the real stdout for protocol messages; everything else printed goes to stderr.

    sys.stdout is pointed at sys.stderr, and when the protocol stream is file descriptor 1, the
    descriptor itself is moved aside and fd 1 is made a copy of stderr, so that output from C
    extensions or child processes cannot corrupt the stream either.
    """
    saved_stdout = sys.stdout
    moved_fd = None
    protocol_out = stdout_binary
    if _fileno(stdout_binary) == 1:
        stdout_binary.flush()
        moved_fd = _move_aside_fd1()
    if moved_fd is not None:
        protocol_out = open(moved_fd, "wb", closefd=False)
    sys.stdout = sys.stderr
    try:
        yield protocol_out
    finally:
        sys.stdout = saved_stdout
        if moved_fd is not None:
            # A client that closed our stdout leaves unwritten replies in the buffer: closing
            # flushes them again and fails the same way, which must not replace the exit code
            # the server chose (4, protocol.md) with a BrokenPipeError.
            with contextlib.suppress(OSError):
                protocol_out.flush()
            with contextlib.suppress(OSError):
                protocol_out.close()
            os.dup2(moved_fd, 1)
            os.close(moved_fd)


def claim_stdout() -> BinaryIO:
    """For a process that ends with its reply loop (the legacy apply loop): the real stdout, for
    replies only, with fd 1 itself now writing to stderr; nothing is given back."""
    moved_fd = _move_aside_fd1() if _fileno(sys.stdout) == 1 else None
    if moved_fd is None:
        return sys.stdout.buffer
    return open(moved_fd, "wb")


def _move_aside_fd1() -> int | None:
    """A private copy of fd 1 for the protocol, with fd 1 itself now writing to stderr."""
    try:
        sys.stdout.flush()
        moved_fd = os.dup(1)
    except (OSError, ValueError) as exc:
        log.warning("could not move stdout aside (%s); relying on sys.stdout redirection", exc)
        return None
    try:
        os.dup2(2, 1)
    except OSError as exc:
        log.warning("could not point fd 1 at stderr (%s); relying on sys.stdout redirection", exc)
        os.close(moved_fd)
        return None
    return moved_fd


def _fileno(stream: object) -> int | None:
    try:
        return stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


TERMINATION_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)
_held: dict[int, object] = {}  # signal -> its handler before hold_termination_signals
_pending: list[int] = []  # termination signals that arrived while held


def hold_termination_signals() -> None:
    """At process start, before the slow imports (torch: seconds): note a termination signal
    instead of dying of it. The resident engine then exits cleanly (code 0) as if the signal
    had come once it was serving; every other command gets it back (release_held_signals)."""
    for number in TERMINATION_SIGNALS:
        _held[number] = signal.signal(number, lambda signum, frame: _pending.append(signum))


def release_held_signals() -> None:
    """Undo hold_termination_signals and deliver what arrived meanwhile, as if never held."""
    for number, old in _held.items():
        signal.signal(number, old)
    _held.clear()
    while _pending:
        signal.raise_signal(_pending.pop(0))


@contextlib.contextmanager
def termination_signals(handler: Callable[[], None]) -> Iterator[None]:
    """SIGTERM, SIGINT and SIGHUP call ``handler`` (only possible in the main thread); one that
    arrived while they were held (hold_termination_signals) calls it at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for number in TERMINATION_SIGNALS:
        previous[number] = signal.signal(number, lambda signum, frame: handler())
        if number in _held:
            previous[number] = _held.pop(number)
    if _pending:
        log.info("a termination signal arrived while the engine was starting; stopping")
        _pending.clear()
        handler()
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
