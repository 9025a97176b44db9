"""Data-parallel scaling: samples/s and seconds per epoch with 1 and 2 workers, side by side.

Each configuration is a real `lfengine train` process (``--workers N``; with CUDA also one GPU
in fp32 and in bf16), on the LF sample data, the same seed and epochs; the configurations run
in turn, twice (alternating which goes first), and the faster round counts. Per configuration:
the median seconds per epoch over epochs 2..N (from the epoch stamps in model.json's history:
training, validation and saving), training samples per second, CPU seconds of all its
processes (getrusage of the waited children: rank 0 waits for its workers), and the validation
accuracy. Ratios are against 1 worker: speed-up, scaling efficiency (speed-up / workers), and
CPU overhead (the all-reduce, the second process's own interpreter and data, the sharding).

    nice .venv/bin/python bench/bench_scale.py [--epochs 4] [--data class-ngram-sp1 seq-pos1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
LFDATA = REPO.parent / "shared" / "lfdata"
OUT = REPO / "bench" / "out"
SEED = 1


def configurations() -> list[tuple[str, list[str]]]:
    runs = [
        ("1 worker", ["--workers", "1", "--device", "cpu"]),
        ("2 workers", ["--workers", "2", "--device", "cpu"]),
    ]
    if torch.cuda.is_available():
        runs += [
            ("1 GPU fp32", ["--device", "cuda", "--precision", "fp32"]),
            ("1 GPU bf16", ["--device", "cuda", "--precision", "bf16"]),
        ]
    return runs


def run(meta: Path, flags: list[str], epochs: int) -> dict:
    """One training process; its epoch times, throughput, CPU seconds and accuracy."""
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "lfengine",
                "train",
                str(meta),
                tmp,
                "--seed",
                str(SEED),
                "--max-epochs",
                str(epochs),
                "--es-patience",
                str(epochs),
                *flags,
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=3600,
        )
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"training failed: {done.stderr[-2000:]}")
        metadata = json.loads((Path(tmp) / "model.json").read_text())["metadata"]
    history = metadata["training"]["history"]
    stamps = [e["time"] for e in history]
    per_epoch = float(np.median(np.diff(stamps))) if len(stamps) > 1 else wall
    instances = metadata["training"]["instances"]
    return {
        "s_per_epoch": per_epoch,
        "samples_per_s": instances / per_epoch,
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "wall_s": wall,
        "accuracy": history[-1]["validation"].get("accuracy", float("nan")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--data", nargs="+", default=["class-ngram-sp1", "seq-pos1"])
    args = parser.parse_args()
    if not (LFDATA / f"{args.data[0]}.meta.json").is_file():
        print(f"LF reference data not found at {LFDATA}; nothing to measure", file=sys.stderr)
        return 0
    results: dict[str, dict[str, dict]] = {}
    configs = configurations()
    for name in args.data:
        meta = LFDATA / f"{name}.meta.json"
        best: dict[str, dict] = {}
        for round_ in range(2):
            order = configs if round_ == 0 else configs[::-1]
            for label, flags in order:
                row = run(meta, flags, args.epochs)
                if label not in best or row["s_per_epoch"] < best[label]["s_per_epoch"]:
                    best[label] = row
        results[name] = best
    print(f"\ndata-parallel scaling, {args.epochs} epochs, {os.cpu_count()} CPUs; faster of two rounds\n")
    header = (
        f"{'data':16} {'run':12} {'s/epoch':>8} {'samples/s':>10} {'speed-up':>8} {'efficiency':>10} "
        f"{'CPU s':>7} {'CPU ratio':>9} {'val acc':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, rows in results.items():
        base = rows["1 worker"]
        for label, row in rows.items():
            workers = 2 if label == "2 workers" else 1
            speed_up = base["s_per_epoch"] / row["s_per_epoch"]
            print(
                f"{name:16} {label:12} {row['s_per_epoch']:>8.2f} {row['samples_per_s']:>10.0f} "
                f"{speed_up:>8.2f} "
                f"{speed_up / workers:>10.2f} {row['cpu_s']:>7.1f} {row['cpu_s'] / base['cpu_s']:>9.2f} "
                f"{row['accuracy']:>8.4f}"
            )
    if not torch.cuda.is_available():
        print("\nno CUDA device here: the GPU rows (fp32 vs bf16) were not measured")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scale.json").write_text(json.dumps({"epochs": args.epochs, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
