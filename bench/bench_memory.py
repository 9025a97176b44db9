"""Peak resident memory of a training run, epoch by epoch: it must not grow with the epochs.

Trains the default network on the 12k-sentence synthetic tagging set (lfengine.data.synthetic)
through lfengine.service.train, in a fresh process, and reads the process's peak RSS (VmHWM in
/proc/self/status) and its minor page faults and system time (getrusage) after every epoch
(once it is validated, saved and checkpointed).
Target: peak RSS after the last epoch within 10 % of the peak after epoch 1.

    nice .venv/bin/python bench/bench_memory.py [--epochs 16] [--sentences 12000] [--threads 2]

``--phases`` also shows, per epoch, the peak RSS inside each phase (training batches,
validation forward passes and scoring, model save, checkpoint, metrics, memory release): the
peak is reset (/proc/self/clear_refs) as each phase starts, so each number is that phase's own.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import resource
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lfengine import predictor, service  # noqa: E402
from lfengine.data.synthetic import write_sequence_corpus  # noqa: E402
from lfengine.options import TrainOptions  # noqa: E402
from lfengine.storage import store  # noqa: E402
from lfengine.training import model_writer, trainer  # noqa: E402

OUT = REPO / "bench" / "out"
TARGET = 1.10


def peak_rss_mib() -> float:
    """VmHWM: the process's peak resident set size so far."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks")
        + ("fordblks", "keepcost")
    ]


def heap_mib() -> dict[str, float]:
    """glibc's own account (mallinfo2): bytes in use, free in the heap, and in mmapped blocks."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    mib = 2**20
    return {
        "heap_in_use_mib": round(info.uordblks / mib, 1),
        "heap_free_mib": round(info.fordblks / mib, 1),
        "mmapped_mib": round(info.hblkhd / mib, 1),
    }


class PhaseTrace:
    """Peak and end RSS of each phase of an epoch, the peak reset as each phase starts."""

    def __init__(self) -> None:
        self.stack = ["other"]
        self.peaks: dict[str, float] = {}
        self.overall = 0.0  # the process's peak (VmHWM is reset at each phase)

    def _switch(self, name: str) -> None:
        phase = self.stack[-1]
        peak = _status_mib("VmHWM")
        self.peaks[phase] = max(self.peaks.get(phase, 0.0), peak)
        self.overall = max(self.overall, peak)
        self.stack[-1] = name
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS

    def wrap(self, owner: object, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)
        trace = self

        def traced(*args, **kwargs):
            before = trace.stack[-1]
            trace._switch(name)
            try:
                return original(*args, **kwargs)
            finally:
                trace._switch(before)

        setattr(owner, attribute, traced)

    def epoch_done(self) -> dict[str, float]:
        self._switch(self.stack[-1])
        peaks, self.peaks = self.peaks, {}
        return {k: round(v, 1) for k, v in sorted(peaks.items())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--sentences", type=int, default=12000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--collect", action="store_true", help="gc.collect() after every epoch (diagnosis)")
    parser.add_argument("--phases", action="store_true", help="peak RSS of each phase (diagnosis)")
    args = parser.parse_args()
    rows: list[dict] = []
    trace = PhaseTrace() if args.phases else None
    if trace is not None:
        original_step = trainer.Trainer._step

        def step(self, *a, **k):
            if trace.stack[-1] != "train":
                trace._switch("train")
            return original_step(self, *a, **k)

        trainer.Trainer._step = step
        trace.wrap(trainer.Trainer, "_validate", "validate-score")
        trace.wrap(predictor.Predictor, "run", "validate-forward")
        trace.wrap(store, "save_model_dir", "model-save")
        trace.wrap(store, "save_checkpoint", "checkpoint")
        trace.wrap(model_writer, "append_metrics", "metrics")
        trace.wrap(trainer, "release_freed_memory", "release")

    def record(epoch: int) -> None:
        if args.collect:
            gc.collect()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        rows.append(
            {
                "epoch": epoch,
                "peak_rss_mib": round(peak_rss_mib(), 1),
                "minor_faults": usage.ru_minflt,
                "system_s": round(usage.ru_stime, 2),
                "user_s": round(usage.ru_utime, 2),
                "python_objects": len(gc.get_objects()),
                "rss_mib": round(_status_mib("VmRSS"), 1),
                **heap_mib(),
            }
        )
        if trace is not None:
            rows[-1]["phase_peaks"] = trace.epoch_done()
            rows[-1]["peak_rss_mib"] = round(trace.overall, 1)
        print(json.dumps(rows[-1]), flush=True)

    def on_progress(event: dict) -> None:
        # "After epoch k" is when epoch k is complete: validated, saved and checkpointed, i.e.
        # at the first batch of epoch k + 1 (and when training returns, for the last epoch).
        if event["batch"] == 1 and event["epoch"] > 1:
            record(event["epoch"] - 1)

    with tempfile.TemporaryDirectory() as tmp:
        meta = write_sequence_corpus(Path(tmp) / "data", args.sentences, seed=7)
        options = TrainOptions(
            max_epochs=args.epochs, es_patience=args.epochs, threads=args.threads, device="cpu", seed=1
        )
        service.train(str(meta), str(Path(tmp) / "model"), options, on_progress=on_progress)
        record(args.epochs)
    first, last = rows[0]["peak_rss_mib"], rows[-1]["peak_rss_mib"]
    ratio = last / first
    verdict = "ok" if ratio <= TARGET else "TOO MUCH GROWTH"
    print(
        f"peak RSS: epoch 1 {first:.0f} MiB, epoch {rows[-1]['epoch']} {last:.0f} MiB, ratio {ratio:.3f} "
        f"(target <= {TARGET}): {verdict}"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "memory.json").write_text(json.dumps({"rows": rows, "ratio": ratio}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
