"""Time and peak memory of the data path: read_meta + build_codec + read_data + collate.

Each measurement runs in a fresh subprocess, so its peak resident set size (ru_maxrss) belongs
to that case alone. Cases: the real seq-pos1 export, and a generated window corpus (26 nominal
window columns, like class-window-pos1) of 200,000 instances by default. Target for the latter
on a 2-core machine: under 10 s and under 1 GB.

    .venv/bin/python bench/bench_data.py [--instances 200000] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
LFDATA = REPO.parent / "shared" / "lfdata"
OUT = REPO / "bench" / "out"
TARGET_SECONDS, TARGET_MB = 10.0, 1024.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def measure(meta_path: str, batch_size: int) -> dict:
    """Run in the child: one pass of the data path, timed per stage."""
    import numpy as np

    from lfengine.data.batching import batch_indices, collate
    from lfengine.data.codec import build_codec
    from lfengine.data.meta import read_meta
    from lfengine.data.reader import read_data

    imports_mb = peak_mb()
    times = {}
    start = last = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal last
        now = time.perf_counter()
        times[stage], last = now - last, now

    spec = read_meta(meta_path)
    lap("meta")
    codec, _ = build_codec(spec, seed=1)
    lap("codec")
    data = read_data(codec, spec.data_path()).data
    lap("read")
    batches = batch_indices(data.lengths(), batch_size, rng=np.random.default_rng(1), bucket=spec.is_sequence)
    for items in batches:
        collate(data, items)
    lap("collate")
    times["total"] = time.perf_counter() - start
    return {
        "items": len(data),
        "rows": int(data.nominal.shape[0]),
        "batches": len(batches),
        "seconds": times,
        "imports_mb": imports_mb,
        "peak_mb": peak_mb(),
    }


def run_case(meta_path: Path, batch_size: int) -> dict:
    cmd = [sys.executable, __file__, "--measure", str(meta_path), "--batch-size", str(batch_size)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measurement of {meta_path} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def window_corpus(instances: int, seed: int) -> tuple[Path, float | None]:
    """The generated corpus, reused from bench/out when it was made with the same settings."""
    from lfengine.data.synthetic import write_window_corpus

    directory = OUT / f"window-{instances}-seed{seed}"
    meta = directory / "class-window-synth.meta.json"
    if meta.is_file() and meta.with_name("class-window-synth.data.json").is_file():
        return meta, None
    start = time.perf_counter()
    write_window_corpus(directory, instances, seed)
    return meta, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.batch_size)))
        return 0
    cases = []
    if (LFDATA / "seq-pos1.meta.json").is_file():
        cases.append(("seq-pos1", LFDATA / "seq-pos1.meta.json", None))
    else:
        print(f"seq-pos1 skipped: {LFDATA} not found")
    meta, generated = window_corpus(args.instances, args.seed)
    cases.append((f"window {args.instances:,}", meta, TARGET_SECONDS))
    if generated is not None:
        print(f"generated {meta.parent} in {generated:.1f} s")
    header = (
        f"{'case':<16}{'items':>9}{'rows':>9}{'batches':>9}{'meta':>7}{'codec':>7}{'read':>7}"
        f"{'collate':>8}{'total s':>9}{'imports MB':>11}{'peak MB':>9}  target"
    )
    print(header)
    print("-" * len(header))
    for name, path, target in cases:
        r = run_case(path, args.batch_size)
        s = r["seconds"]
        verdict = ""
        if target is not None:
            ok = s["total"] < target and r["peak_mb"] < TARGET_MB
            verdict = f"{'met' if ok else 'MISSED'} (<{target:.0f} s, <{TARGET_MB:.0f} MB)"
        print(
            f"{name:<16}{r['items']:>9,}{r['rows']:>9,}{r['batches']:>9,}{s['meta']:>7.2f}{s['codec']:>7.2f}"
            f"{s['read']:>7.2f}{s['collate']:>8.2f}{s['total']:>9.2f}{r['imports_mb']:>11.0f}"
            f"{r['peak_mb']:>9.0f}  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
