"""Peak resident memory of a training run, epoch by epoch: it must not grow with the epochs.

Trains the default network on the 12k-sentence synthetic tagging set (lfengine.data.synthetic)
through lfengine.service.train, in a fresh process, and reads the process's peak RSS (VmHWM in
/proc/self/status) and its minor page faults and system time (getrusage) after every epoch
(once it is validated, saved and checkpointed).
Target: peak RSS after the last epoch within 10 % of the peak after epoch 1.

    nice .venv/bin/python bench/bench_memory.py [--epochs 16] [--sentences 12000] [--threads 2]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lfengine import service  # noqa: E402
from lfengine.data.synthetic import write_sequence_corpus  # noqa: E402
from lfengine.options import TrainOptions  # noqa: E402

OUT = REPO / "bench" / "out"
TARGET = 1.10


def peak_rss_mib() -> float:
    """VmHWM: the process's peak resident set size so far."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--sentences", type=int, default=12000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--collect", action="store_true", help="gc.collect() after every epoch (diagnosis)")
    args = parser.parse_args()
    rows: list[dict] = []

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
            }
        )
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
