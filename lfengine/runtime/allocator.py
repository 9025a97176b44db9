"""The C allocator's settings for a process that trains or serves: keep freed memory for reuse.

Training allocates the same large tensors batch after batch (activations, gradients, Adam's
temporaries); serving allocates the same large tensors request after request. glibc serves
blocks above its mmap threshold (32 MiB at most by default) with fresh mappings, returns freed
memory above its trim threshold to the system, and gives threads other than the main one arenas
whose heaps cannot grow past 64 MiB. Each batch then pays again for page faults on zero-filled
memory: measured on class-ngram-sp1, a 4-epoch training made over a million minor faults and
spent 3-4 s in the kernel, and a third of a large apply-batch was page faults. With one arena
and high mmap and trim thresholds the freed blocks are reused instead.

oneDNN, which runs torch's CPU convolutions (and LSTMs at inference), keeps the last 1024
kernels it built, one per input shape. Training meets new shapes with nearly every batch
(sentence and word lengths vary), so the cache rarely hits, and its long-lived kernels,
scattered over the heap, kept it from coalescing: measured with bench/bench_memory.py (12k
sentences, 16 epochs, 1 thread) the peak resident size grew 13 % (6 % in 3 epochs with a cache
of 32 kernels); with none, 5 %, flat after epoch 3, and the training steps cost the same CPU
(bench_speed, seq-pos1: 1.56 against 1.54 s per epoch). A process that trains therefore keeps
no kernels; a resident engine keeps oneDNN's default, for the repeated shapes of apply-batch.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

KEPT_FREED_MEMORY_BYTES = 2**30
#: While training: blocks from this size on get their own mapping, returned when freed. Training
#: steps allocate far smaller tensors; the large ones are validation passes over thousands of
#: items at once, rare and short-lived: kept in the heap, they fragment it, and the peak
#: resident size grew epoch after epoch (bench/bench_memory.py).
TRAINING_MMAP_THRESHOLD_BYTES = 32 * 2**20
#: oneDNN kernels kept for reuse in a process that trains, and in a resident engine (oneDNN's
#: default); ONEDNN_PRIMITIVE_CACHE_CAPACITY in the environment wins.
TRAINING_KERNEL_CACHE, SERVING_KERNEL_CACHE = 0, 1024
KERNEL_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # from glibc's malloc.h
_applied = False


def reuse_freed_memory(limit: int = KEPT_FREED_MEMORY_BYTES, mmap_from: int | None = None) -> bool:
    """Make the C allocator keep freed memory (up to ``limit`` per block) for the next use.

    One arena for all threads, and mmap and trim thresholds of ``limit`` (the mmap threshold
    ``mmap_from`` when given). The price is a
    resident size that stays at the largest working set since the last release_freed_memory().
    Returns whether the allocator took the settings (only glibc has ``mallopt``). Call it before
    starting threads; calling it again is harmless.
    """
    global _applied
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    mmap_threshold = limit if mmap_from is None else mmap_from
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, mmap_threshold), (_M_TRIM_THRESHOLD, limit))
    _applied = all([bool(libc.mallopt(option, value)) for option, value in settings])
    return _applied


def bound_kernel_cache(capacity: int) -> None:
    """Let oneDNN keep at most ``capacity`` kernels (unless the environment says otherwise).

    oneDNN reads the setting once, when it builds its first kernel: in a process that ran a
    model before, this changes nothing. The local workers of --workers inherit it.
    """
    os.environ.setdefault(KERNEL_CACHE_VARIABLE, str(capacity))


def release_freed_memory() -> None:
    """Give the memory freed since (a training's data and activations) back to the system."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _libc() -> ctypes.CDLL | None:
    """The C library this process already uses, on Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


@contextmanager
def training_memory() -> Iterator[None]:
    """The allocator settings for a training run; afterwards those of the process before it (a
    resident engine keeps its large blocks for apply-batch again)."""
    resident = _applied
    bound_kernel_cache(TRAINING_KERNEL_CACHE)
    reuse_freed_memory(mmap_from=TRAINING_MMAP_THRESHOLD_BYTES)
    try:
        yield
    finally:
        if resident:
            reuse_freed_memory()
