"""`lfengine ...` with rank 0's time taken apart: where an epoch of data-parallel training goes.

Used by bench/bench_scale.py as the training process (``python bench/scale_probe.py OUT.json
train META DIR ...``). It wraps, in this process only (rank 0; the other ranks run unchanged):
batch collation (data), the training step (forward, backward, optimizer), the gradient
all-reduce inside the step (a DistributedDataParallel communication hook that times each
bucket from launch to completion: the transfer plus any wait for the other ranks), the loss
all-reduce inside the step, the per-batch stop/learning-rate broadcast, and validation with its
saves. At each epoch's checkpoint it notes the wall clock and the CPU seconds of every training
process (this one and its local workers, from /proc). Per-epoch differences go to OUT.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# lfengine before torch: its OpenMP default (lfengine/__init__.py) must precede torch's loading.
from lfengine.cli import main as lfengine_main  # noqa: E402
from lfengine.storage import store  # noqa: E402
from lfengine.training import distributed, trainer  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


class Probe:
    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.epochs: list[dict[str, float]] = []
        self.worker_pids: list[int] = []

    def timed(self, owner: object, attribute: str, key: str) -> None:
        original = getattr(owner, attribute)
        totals = self.totals

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                totals[key] += time.perf_counter() - started

        setattr(owner, attribute, wrapper)

    def mark_epoch(self) -> None:
        cpu = time.process_time() + sum(_cpu_seconds(pid) for pid in self.worker_pids)
        self.epochs.append({"wall": time.perf_counter(), "cpu": cpu, **self.totals})

    def install(self) -> None:
        self.timed(trainer, "collate", "data")
        self.timed(trainer.Trainer, "_step", "step")
        self.timed(distributed.Coordinator, "mean_loss", "loss_allreduce")
        self.timed(distributed.Coordinator, "agree", "broadcast")
        self.timed(trainer.Trainer, "_validate", "validation")
        self.timed(trainer, "release_freed_memory", "validation")
        original_start, original_loss_function = distributed.start, distributed.Coordinator.loss_function
        original_save = store.save_checkpoint
        probe = self

        def start(*args, **kwargs):
            coordinator = original_start(*args, **kwargs)
            probe.worker_pids = [w.pid for w in coordinator.workers]
            return coordinator

        def loss_function(coordinator, model):
            function = original_loss_function(coordinator, model)
            if coordinator.parallel:
                function.register_comm_hook(coordinator.world, probe.allreduce_hook)
            return function

        def save_checkpoint(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original_save(*args, **kwargs)
            finally:
                probe.totals["validation"] += time.perf_counter() - started
                probe.mark_epoch()

        distributed.start = start
        distributed.Coordinator.loss_function = loss_function
        store.save_checkpoint = save_checkpoint

    def allreduce_hook(self, world: int, bucket):  # no annotation: DDP checks it against the class
        """DDP's own averaging all-reduce, timed from launch to completion."""
        started = time.perf_counter()
        future = distributed.dist.all_reduce(bucket.buffer().div_(world), async_op=True).get_future()
        totals = self.totals

        def done(fut):
            totals["grad_allreduce"] += time.perf_counter() - started
            return fut.value()[0]

        return future.then(done)

    def per_epoch(self) -> list[dict[str, float]]:
        """Differences between consecutive epoch ends (epochs 2..N)."""
        rows = []
        for before, after in zip(self.epochs, self.epochs[1:]):
            rows.append({k: after.get(k, 0.0) - before.get(k, 0.0) for k in after})
        return rows


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    probe = Probe()
    probe.install()
    code = lfengine_main(argv)
    Path(out).write_text(json.dumps({"epochs": probe.per_epoch()}))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
