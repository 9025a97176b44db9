"""Data-parallel training on torch.distributed: N processes, one model, gradients all-reduced.

``--workers N`` starts N-1 worker processes on this machine (``python -m lfengine.worker``)
beside the one that was asked to train; under ``torchrun`` every process finds RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT in its environment and joins. Backend: gloo on the CPU,
NCCL on CUDA.

How the work is shared (DistributedSampler semantics at batch level): every rank draws the same
epoch order from the same seeded generator (length-bucketed for sequences) and takes every
N-th item of each batch. ``batch_size`` stays the global batch, so one optimizer step sees the
same items as a single process would, and the heuristics' learning rate holds for any N.
DistributedDataParallel averages the gradients; every rank then takes the same optimizer step.

Rank 0 alone validates, logs, writes the model and checkpoints and talks to the caller. Once per
batch it tells the other ranks whether to stop (cancel, stop file, SIGINT) and the learning rate
to use; after each epoch, whether early stopping ended the run. Dense gradients, measured
(bench/bench_scale.py, 2 gloo processes): one batch's exchange costs 6.7 ms dense against 6.0 ms
with the embedding rows sent sparse on class-ngram-sp1 (a 20k x 120 table, 325 rows a batch),
and 4.9 against 16.7 ms on seq-pos1 (three tables, the layers dominate); sparse gradients would
also rule out AdamW (torch's SparseAdam has no weight decay).
"""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from lfengine.errors import OptionError

# The logger keeps its name from before the move into lfengine/training/: clients see it in log
# notifications (protocol.md) and may filter on it.
log = logging.getLogger("lfengine.distributed")

ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
LOOPBACK = "127.0.0.1"  # local workers meet rank 0 here; other machines join through torchrun
JOIN_TIMEOUT_S = 300.0  # local workers must connect within this (they import torch and read the data)
GLOO_SETTLE_SECONDS = 0.5  # see Coordinator.close
COLLECTIVE_TIMEOUT = timedelta(minutes=60)  # rank 0 may validate a large set while the others wait
STOP_REASONS = ("", "cancelled", "stop-file", "early-stopping")
_worker_store: dist.TCPStore | None = None  # set in a local worker process (announce_worker)


class _Loss(torch.nn.Module):
    """The model's training loss as a forward pass, so DistributedDataParallel can hook it."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> torch.Tensor:
        return self.model.loss(batch)


# Every tensor handed to a collective stays referenced here until the process ends. gloo's
# worker thread may free a finished work after the call has returned; if Python had already let
# go of the tensor, freeing it there needs the GIL, which the main thread holds while the last
# reference to the process group (the DDP reducer's) goes and it joins that thread: a deadlock,
# seen 1 run in 20 at the end of a torchrun-style run. Module-level, so that it outlives every
# coordinator, trainer and reducer. Only the last few can still be held by gloo.
_HANDED: deque[torch.Tensor] = deque(maxlen=8)


@dataclass
class Coordinator:
    """This process's place in a data-parallel training; world 1 is an ordinary single process."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    workers: list[subprocess.Popen] = field(default_factory=list)
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def shard(self, items: np.ndarray) -> np.ndarray:
        """This rank's items of one batch: every N-th, padded by repetition so no rank is empty."""
        if not self.parallel:
            return items
        if len(items) < self.world:
            items = np.resize(items, self.world)
        return items[self.rank :: self.world]

    def loss_function(self, model: torch.nn.Module) -> Any:
        """``batch -> loss``: the model's own loss, or through DDP when there are several ranks."""
        if not self.parallel:
            return model.loss
        ids = [self.device.index] if self.device.type == "cuda" else None
        # Not every parameter takes part in every batch (previous-label columns hidden, no list
        # tokens in a batch), hence find_unused_parameters. The networks' buffers are constant
        # tables built alike on every rank (the word-shape character classes): syncing them
        # at every forward would cost a collective per batch and leave module tensors in gloo's
        # hands at the end (see _HANDED).
        return torch.nn.parallel.DistributedDataParallel(
            _Loss(model), device_ids=ids, find_unused_parameters=True, forward_sync_buffers=False
        )

    def agree(self, reason: str | None, optimizer: torch.optim.Optimizer) -> str | None:
        """Rank 0's stop reason and learning rates, the same on every rank (once per batch)."""
        if not self.parallel:
            return reason
        groups = optimizer.param_groups
        values = [float(STOP_REASONS.index(reason or ""))] + [float(g["lr"]) for g in groups]
        message = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.broadcast(self._hand(message), src=0)
        received = message.cpu().tolist()
        for group, lr in zip(groups, received[1:]):
            group["lr"] = lr
        return STOP_REASONS[int(received[0])] or None

    def mean_loss(self, loss: torch.Tensor, items: int) -> float:
        """The loss over the whole global batch (every rank's items), the same on every rank."""
        if not self.parallel:
            return float(loss.detach())
        both = torch.stack(
            [
                loss.detach().double() * items,
                torch.tensor(float(items), dtype=torch.float64, device=loss.device),
            ]
        )
        both = both.to(self._comm_device())
        dist.all_reduce(self._hand(both))
        total, count = both.cpu().tolist()
        return total / count

    def share(self, data: bytes | None) -> bytes:
        """Rank 0's bytes on every rank (a checkpoint for --resume: tensors, loaded weights_only)."""
        if not self.parallel:
            return data or b""
        size = torch.tensor([len(data or b"")], dtype=torch.int64, device=self._comm_device())
        dist.broadcast(self._hand(size), src=0)
        buffer = (
            torch.frombuffer(bytearray(data), dtype=torch.uint8)
            if self.main and data
            else torch.empty(int(size.item()), dtype=torch.uint8)
        ).to(self._comm_device())
        if int(size.item()):
            dist.broadcast(self._hand(buffer), src=0)
        return bytes(buffer.cpu().numpy())

    def shared_payload(self, payload: dict[str, Any] | None) -> dict[str, Any]:
        """Rank 0's checkpoint payload on every rank: sent as bytes, loaded weights_only."""
        if not self.parallel:
            return payload or {}
        data = None
        if self.main:
            buffer = io.BytesIO()
            torch.save(payload, buffer)
            data = buffer.getvalue()
        data = self.share(data)
        if self.main:
            return payload or {}
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)

    def torch_rng_states(self) -> list[torch.Tensor]:
        """Every rank's torch CPU generator state (dropout draws differ by rank), rank order."""
        state = torch.get_rng_state()
        if not self.parallel:
            return [state]
        states = [torch.empty_like(state).to(self._comm_device()) for _ in range(self.world)]
        dist.all_gather(states, state.to(self._comm_device()))
        return [s.cpu() for s in states]

    def restore_torch_rng(self, states: list[torch.Tensor] | None) -> None:
        if states and len(states) == self.world:
            torch.set_rng_state(states[self.rank])
        elif states:
            log.warning(
                "the checkpoint has RNG states for %d ranks, not %d: dropout draws differ",
                len(states),
                self.world,
            )

    def _hand(self, tensor: torch.Tensor) -> torch.Tensor:
        _HANDED.append(tensor)
        return tensor

    def barrier(self) -> None:
        if self.parallel:
            dist.barrier()

    def close(self, failed: bool = False) -> None:
        """Leave the process group and wait for (or, after a failure, stop) the local workers."""
        if self.parallel and dist.is_initialized():
            # gloo's thread frees the works it has finished, and freeing a tensor Python has seen
            # takes the GIL. The group itself goes later, with the DDP reducer, on a thread that
            # holds the GIL and joins gloo's: so let gloo's thread finish now, while we hold none.
            time.sleep(GLOO_SETTLE_SECONDS)
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        for worker in self.workers:
            try:
                worker.wait(timeout=5 if failed else 120)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        self.workers = []

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def under_launcher() -> bool:
    """True in a process that torchrun (or a worker launch of ours) started as one rank of several."""
    return all(k in os.environ for k in ENV) and int(os.environ.get("WORLD_SIZE", "1")) > 1


def threads_per_worker(workers: int) -> int | None:
    """torch threads for each of ``workers`` local processes: the cores shared out (None: one
    process keeps torch's own choice)."""
    if workers <= 1:
        return None
    return max(1, usable_cores() // workers)  # the cores this process may use, as --workers counts them


def local_device(device: torch.device) -> torch.device:
    """Each local rank its own GPU (LOCAL_RANK), as torchrun expects."""
    if device.type == "cuda" and device.index is None and under_launcher():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return device


def start(workers: int, device: torch.device, argv: list[str]) -> Coordinator:
    """Join a launcher's ranks, start ``workers - 1`` local ones (running ``argv``), or neither."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if under_launcher():
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if _worker_store is not None:  # a local worker of ours: the store it announced itself on
            dist.init_process_group(
                backend, store=_worker_store, rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT
            )
        else:
            dist.init_process_group(
                backend, init_method="env://", rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT
            )
        log.info("joined data-parallel training as rank %d of %d (%s)", rank, world, backend)
        return Coordinator(rank, world, device, owns_group=True)
    if workers <= 1:
        return Coordinator(device=device)
    if device.type == "cuda" and torch.cuda.device_count() < workers:
        raise OptionError(
            f"workers {workers} on CUDA needs {workers} GPUs; this machine has {torch.cuda.device_count()}"
        )
    if device.type != "cuda" and workers > usable_cores():
        raise OptionError(
            f"workers {workers} is more than the {usable_cores()} CPU cores this process may use: "
            f"give --workers {usable_cores()} at most (each worker is a process with its own copy "
            "of the model and data); more machines join through torchrun"
        )
    store = loopback_store(workers)
    env = {
        **os.environ,
        "MASTER_ADDR": LOOPBACK,
        "MASTER_PORT": str(store.port),
        "WORLD_SIZE": str(workers),
        "LFENGINE_PARENT_PID": str(os.getpid()),
    }
    threads = threads_per_worker(workers) or 1
    started = []
    for rank in range(1, workers):
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "lfengine.worker", *argv, str(threads)],
                env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        )
    coordinator = Coordinator(0, workers, device, started)
    try:
        _wait_for_workers(store, started)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, store=store, rank=0, world_size=workers, timeout=COLLECTIVE_TIMEOUT)
    except BaseException:
        coordinator.close(failed=True)
        raise
    coordinator.owns_group = True
    log.info(
        "data-parallel training with %d processes (%s, %d torch threads each)", workers, backend, threads
    )
    return coordinator


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def loopback_store(workers: int) -> dist.TCPStore:
    """The rendezvous store of rank 0 and its local workers, listening on 127.0.0.1 only.

    TCPStore binds its own listening socket to every interface, which would let any host that
    reaches this one join the training or read and write its keys. Handed a socket already
    bound to the loopback address, it listens on that one instead (and closes it with itself).
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((LOOPBACK, 0))
        listener.listen(max(workers, 16))
        port = listener.getsockname()[1]
    except BaseException:
        listener.close()
        raise
    return dist.TCPStore(
        LOOPBACK,
        port,
        workers,
        True,
        timeout=COLLECTIVE_TIMEOUT,
        wait_for_workers=False,
        master_listen_fd=listener.detach(),
    )


def _wait_for_workers(store: dist.TCPStore, workers: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while store.add("lfengine/joined", 0) < len(workers):
        failed = [w for w in workers if w.poll() is not None]
        if failed:
            raise OptionError(
                f"a training worker process ended before it joined (exit code "
                f"{failed[0].returncode}); see the messages above"
            )
        if time.monotonic() > deadline:
            raise OptionError(f"the training workers did not start within {JOIN_TIMEOUT_S:.0f} s")
        time.sleep(0.05)


def announce_worker() -> None:
    """In a local worker (lfengine.worker): join the store rank 0 waits on; start() uses it."""
    global _worker_store
    _worker_store = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=COLLECTIVE_TIMEOUT
    )
    _worker_store.add("lfengine/joined", 1)
