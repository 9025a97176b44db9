"""Seconds per training epoch: the old wrapper's network shapes against lfengine's defaults.

For class-ngram-sp1, class-window-pos1 and seq-pos1 (shared/lfdata), on the same training split lfengine uses
(seed 1, 10 % validation), with the same torch thread count for everything:

  old shapes          bench/old_networks.py (reference-wrapper.md §3.3/§3.4/§3.6/§3.7): NLLLoss,
                      Adam 1e-3, batch 32, fed from lfengine's own collated batches. The old
                      wrapper also rebuilt tensors from Python lists every batch (defect P3);
                      that cost is not emulated, so the old figures here are a lower bound.
  lfengine loop       lfengine's default network and settings (the heuristics' batch size,
                      learning rate, gradient clipping), stepped exactly as Trainer._step does;
                      training only: no validation, no saving.
  lfengine train()    lfengine.service.train end to end: per epoch it also validates, saves the
                      best model and writes the resume checkpoint.

The variants run their epochs in turn (epoch 1 of each, then epoch 2 of each, ...), so load from
other processes on a shared machine falls on all of them alike. s/epoch is the median over
epochs 2..N (epoch 1 carries one-time costs and is shown apart); the ratio is against the old
shapes; the target is lfengine <= 2x. Validation accuracy after N epochs is printed for each.

CPU seconds per epoch (user + system of the whole process while that variant's epoch ran: the
variants never run at the same time), the system seconds and minor page faults per epoch are
shown too: wall time on a shared machine mostly measures the other processes. Target: the
lfengine loop <= 1.0x the old shapes' CPU per epoch. The whole process runs with the allocator
settings of every lfengine process that trains (lfengine.runtime.allocator.reuse_freed_memory).
Results also go to bench/out/speed.json.

    nice .venv/bin/python bench/bench_speed.py [--epochs 4] [--threads 2] [--data class-ngram-sp1 ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from old_networks import old_loss, old_network, old_optimizer  # noqa: E402

from lfengine import service  # noqa: E402
from lfengine.builder.build import NetworkPlan, build_network  # noqa: E402
from lfengine.builder.heuristics import choose_config  # noqa: E402
from lfengine.data.batch import IGNORE_INDEX, Batch  # noqa: E402
from lfengine.data.batching import batch_indices, collate, split_indices  # noqa: E402
from lfengine.data.codec import Codec, build_codec  # noqa: E402
from lfengine.data.encoding import Encoded  # noqa: E402
from lfengine.data.meta import read_meta  # noqa: E402
from lfengine.data.reader import read_data  # noqa: E402
from lfengine.options import TrainOptions  # noqa: E402
from lfengine.predictor import Predictor  # noqa: E402
from lfengine.runtime.allocator import reuse_freed_memory  # noqa: E402

LFDATA = REPO.parent / "shared" / "lfdata"
OUT = REPO / "bench" / "out"
OLD_BATCH_SIZE = 32
TARGET_RATIO = 2.0
TARGET_CPU_RATIO = 1.0
SEED = 1


@dataclass
class Prepared:
    """One data set read the way service.train reads it (same codec, same split)."""

    name: str
    meta: Path
    codec: Codec
    init: dict[str, np.ndarray]
    train: Encoded
    val: Encoded


@dataclass
class Row:
    data: str
    variant: str
    batch_size: int
    parameters: int
    epoch_seconds: list[float]
    accuracy: float
    epoch_usage: list[dict[str, float]]  # per epoch: cpu_s, system_s, minor_faults

    def _median(self, key: str) -> float:
        later = self.epoch_usage[1:] or self.epoch_usage
        return float(np.median([u[key] for u in later]))

    @property
    def cpu_per_epoch(self) -> float:
        return self._median("cpu_s")

    @property
    def first(self) -> float:
        return self.epoch_seconds[0]

    @property
    def later(self) -> list[float]:
        return self.epoch_seconds[1:] or self.epoch_seconds

    @property
    def per_epoch(self) -> float:
        return float(np.median(self.later))

    @property
    def fastest(self) -> float:
        return min(self.later)


class UsageClock:
    """CPU seconds, system seconds and minor page faults of this process between two calls."""

    def __init__(self) -> None:
        self.usage: list[dict[str, float]] = []
        self._start: resource.struct_rusage | None = None

    def start(self) -> None:
        self._start = resource.getrusage(resource.RUSAGE_SELF)

    def stop(self) -> None:
        now, then = resource.getrusage(resource.RUSAGE_SELF), self._start
        assert then is not None
        self.usage.append(
            {
                "cpu_s": (now.ru_utime + now.ru_stime) - (then.ru_utime + then.ru_stime),
                "system_s": now.ru_stime - then.ru_stime,
                "minor_faults": now.ru_minflt - then.ru_minflt,
            }
        )


def prepare(name: str) -> Prepared:
    meta = LFDATA / f"{name}.meta.json"
    spec = read_meta(meta)
    codec, init = build_codec(spec, seed=SEED)
    data = read_data(codec, spec.data_path()).data
    train_idx, val_idx = split_indices(len(data), None, seed=SEED, shuffle=True)
    return Prepared(name, meta, codec, init, data.subset(train_idx), data.subset(val_idx))


class LoopVariant:
    """A network trained by a plain loop over shuffled batches, one epoch per call."""

    def __init__(
        self, p: Prepared, name: str, network: torch.nn.Module, batch_size: int, step: Callable[[Batch], None]
    ) -> None:
        self.p, self.name, self.network, self.batch_size, self.step = p, name, network, batch_size, step
        self.rng = np.random.default_rng(SEED)
        self.seconds: list[float] = []
        self.clock = UsageClock()

    def epoch(self) -> None:
        self.network.train()
        start = time.perf_counter()
        self.clock.start()
        bucket = self.p.codec.is_sequence and self.name != "old shapes"  # the old wrapper never bucketed
        for items in batch_indices(self.p.train.lengths(), self.batch_size, rng=self.rng, bucket=bucket):
            self.step(collate(self.p.train, items))
        self.clock.stop()
        self.seconds.append(time.perf_counter() - start)

    def row(self, accuracy: float) -> Row:
        parameters = sum(p.numel() for p in self.network.parameters())
        return Row(
            self.p.name, self.name, self.batch_size, parameters, self.seconds, accuracy, self.clock.usage
        )


def old_variant(p: Prepared) -> LoopVariant:
    torch.manual_seed(SEED)
    network = old_network(p.codec.layout())
    optimizer = old_optimizer(network)

    def step(batch: Batch) -> None:
        optimizer.zero_grad(set_to_none=True)
        old_loss(network, batch).backward()
        optimizer.step()

    return LoopVariant(p, "old shapes", network, OLD_BATCH_SIZE, step)


def old_accuracy(v: LoopVariant) -> float:
    v.network.eval()
    correct = total = 0
    with torch.inference_mode():
        for items in batch_indices(v.p.val.lengths(), 256, rng=None, bucket=False):
            batch = collate(v.p.val, items)
            predicted = v.network(batch).argmax(dim=-1)
            real = batch.targets != IGNORE_INDEX
            correct += int((predicted[real] == batch.targets[real]).sum())
            total += int(real.sum())
    return correct / max(total, 1)


def lfengine_variant(p: Prepared) -> LoopVariant:
    layout = p.codec.layout()
    config, _ = choose_config(layout, TrainOptions(seed=SEED), len(p.train))
    torch.manual_seed(SEED)
    model = build_network(NetworkPlan(layout, config, p.init))
    optimizer = model.make_optimizer()

    def step(batch: Batch) -> None:  # the same as lfengine.training.trainer.Trainer._step
        optimizer.zero_grad(set_to_none=True)
        model.loss(batch).backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()

    return LoopVariant(p, "lfengine loop", model, config.batch_size, step)


class ServiceVariant:
    """service.train in a thread, held after each epoch's validation so that its epochs run in
    turn with the others'. Interval k: checkpoint of epoch k-1, training, validation and
    best-model save of epoch k (interval 1 also reads the data and builds the model)."""

    def __init__(self, p: Prepared, epochs: int, threads: int) -> None:
        self.p, self.name = p, "lfengine train()"
        self.seconds: list[float] = []
        self.go, self.paused = threading.Semaphore(0), threading.Semaphore(0)
        self.model_dir = tempfile.TemporaryDirectory()
        self.failure: BaseException | None = None
        self.clock = UsageClock()
        options = TrainOptions(seed=SEED, max_epochs=epochs, es_patience=epochs, threads=threads)
        self.thread = threading.Thread(target=self._train, args=(options,), daemon=True)

    def _train(self, options: TrainOptions) -> None:
        try:
            self.go.acquire()
            service.train(str(self.p.meta), self.model_dir.name, options, on_progress=self._hold)
        except BaseException as exc:  # reported by the main thread
            self.failure = exc
        finally:
            self.paused.release()

    def _hold(self, event: dict) -> None:
        if event["metrics"]:
            self.paused.release()
            self.go.acquire()

    def epoch(self) -> None:
        if not self.thread.is_alive() and not self.seconds:
            self.thread.start()
        start = time.perf_counter()
        self.clock.start()
        self.go.release()
        self.paused.acquire()
        self.clock.stop()
        self.seconds.append(time.perf_counter() - start)
        if self.failure is not None:
            raise RuntimeError(f"service.train failed: {self.failure!r}") from self.failure

    def row(self) -> Row:
        self.go.release()  # let it write the last checkpoint and finish
        self.thread.join()
        model = service.load_model(self.model_dir.name)
        self.model_dir.cleanup()
        history = model.metadata["training"]["history"]
        return Row(
            self.p.name,
            self.name,
            model.metadata["config"]["batch_size"],
            model.describe()["architecture"]["parameters"],
            self.seconds,
            history[-1]["validation"]["accuracy"],
            self.clock.usage,
        )


def measure(p: Prepared, epochs: int, threads: int) -> list[Row]:
    """The three variants' epochs in turn (rotating who goes first), so that load from other
    processes on the machine falls on all of them alike."""
    old, loop, full = old_variant(p), lfengine_variant(p), ServiceVariant(p, epochs, threads)
    variants = [old, loop, full]
    for k in range(epochs):
        for v in variants[k % 3 :] + variants[: k % 3]:
            v.epoch()
            torch.set_num_threads(threads)  # service.train sets it as well; keep them equal
    return [
        old.row(old_accuracy(old)),
        loop.row(Predictor(loop.network, p.codec).evaluate(p.val)["accuracy"]),
        full.row(),
    ]


def print_table(rows: list[Row], epochs: int, threads: int) -> None:
    print(
        f"\ntraining speed, CPU, torch threads {threads}, {epochs} epochs each; over epochs 2..{epochs}: "
        "median and fastest s/epoch, and their ratios to the old shapes\n"
    )
    header = (
        f"{'data':16} {'variant':17} {'batch':>5} {'params':>10} {'epoch 1':>8} {'median':>7} {'ratio':>6} "
        f"{'fastest':>7} {'ratio':>6} {'CPU s':>6} {'ratio':>6} {'sys s':>6} {'faults':>8} {'val acc':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        old = _old_row(rows, row)
        print(
            f"{row.data:16} {row.variant:17} {row.batch_size:>5} {row.parameters:>10,} {row.first:>8.3f} "
            f"{row.per_epoch:>7.3f} {row.per_epoch / old.per_epoch:>6.2f} {row.fastest:>7.3f} "
            f"{row.fastest / old.fastest:>6.2f} {row.cpu_per_epoch:>6.2f} "
            f"{row.cpu_per_epoch / old.cpu_per_epoch:>6.2f} {row._median('system_s'):>6.2f} "
            f"{row._median('minor_faults'):>8.0f} {row.accuracy:>8.4f}"
        )
    print()
    for row in rows:
        if row.variant != "old shapes":
            ratio = row.per_epoch / _old_row(rows, row).per_epoch
            verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
            print(f"{row.data} {row.variant}: {ratio:.2f}x (median) the old shapes; target <= 2x {verdict}")
            cpu = row.cpu_per_epoch / _old_row(rows, row).cpu_per_epoch
            if row.variant == "lfengine loop":
                verdict = "met" if cpu <= TARGET_CPU_RATIO else "NOT met"
                print(f"{row.data} {row.variant}: {cpu:.2f}x the old CPU s/epoch; target <= 1.0x {verdict}")
            else:
                print(f"{row.data} {row.variant}: {cpu:.2f}x the old CPU s/epoch (with validation, saving)")
    print(
        "'lfengine train()' intervals include validation, best-model saving and the resume checkpoint;\n"
        "its epoch 1 also includes reading the data and building the model."
    )


def _old_row(rows: list[Row], row: Row) -> Row:
    return next(r for r in rows if r.data == row.data and r.variant == "old shapes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", nargs="+", default=["class-ngram-sp1", "class-window-pos1", "seq-pos1"])
    args = parser.parse_args(argv)
    if not (LFDATA / f"{args.data[0]}.meta.json").is_file():
        print(f"LF reference data not found at {LFDATA}; nothing to measure", file=sys.stderr)
        return 0
    quiet = logging.StreamHandler(sys.stderr)
    quiet.setLevel(logging.WARNING)  # service.train raises the root level to INFO for train.log
    logging.getLogger().addHandler(quiet)
    torch.set_num_threads(args.threads)
    reuse_freed_memory()
    rows = []
    for name in args.data:
        rows += measure(prepare(name), args.epochs, args.threads)
    print_table(rows, args.epochs, args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speed.json").write_text(
        json.dumps(
            {
                "epochs": args.epochs,
                "threads": args.threads,
                "rows": [
                    {
                        **asdict(r),
                        "median_s_per_epoch": r.per_epoch,
                        "fastest": r.fastest,
                        "median_cpu_s_per_epoch": r.cpu_per_epoch,
                    }
                    for r in rows
                ],
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
