"""Single-instance round trip through the GATE drop-in, as the LF plugin drives it.

    .venv/bin/python bench/bench_gate_latency.py [--requests 500] [--maxepochs 2] [--workdir DIR]

For class-ionosphere and seq-pos1: a GATE-like data directory (crvd.meta.json, crvd.data.json,
FileJsonPyTorch/ from ``write_wrapper_dir``), a model trained through ``train.sh``, then
``apply.sh`` started with the plugin's command line, working directory and environment, and
driven in lockstep (one request line, wait for its reply), cycling through the data file's
instances without their targets. Reported: start-up (process start to first reply), round-trip
p50/p90/p99/mean, the same instances applied in-process to the loaded model (the bare cost
that the round trip approaches), and the ratio to the old wrapper's p50 (0.4 ms for
class-ionosphere, 1.9 ms for seq-pos1). Results also go to bench/out/gate_latency.json.
With --workdir, a model trained by an earlier run there is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lfengine.gate import write_wrapper_dir  # noqa: E402
from lfengine.gate.client import MODEL_PREFIX_NAME, ApplyProcess, run_training  # noqa: E402

LFDATA = REPO.parent / "shared" / "lfdata"
OLD_P50_MS = {"class-ionosphere": 0.4, "seq-pos1": 1.9}


def prepare(workdir: Path, name: str, maxepochs: int) -> tuple[Path, float | None]:
    """A trained GATE data directory for ``name``; returns it and the training seconds (None if reused)."""
    datadir = workdir / name
    datadir.mkdir(parents=True, exist_ok=True)
    for kind in ("meta", "data"):
        target = datadir / f"crvd.{kind}.json"
        if not target.exists():
            shutil.copyfile(LFDATA / f"{name}.{kind}.json", target)
    write_wrapper_dir(str(datadir))
    if (datadir / f"{MODEL_PREFIX_NAME}.d" / "model.json").is_file():
        return datadir, None
    started = time.monotonic()
    result = run_training(datadir, ["--maxepochs", str(maxepochs)], python=sys.executable, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"training {name} failed:\n{result.stderr.decode()[-3000:]}")
    return datadir, time.monotonic() - started


def requests_of(datadir: Path) -> list[bytes]:
    lines = (datadir / "crvd.data.json").read_text(encoding="utf-8").splitlines()
    return [json.dumps(json.loads(line)[0]).encode("utf-8") for line in lines]


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    values = sorted(s * 1000 for s in seconds)
    return {
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "mean": statistics.fmean(values),
    }


def round_trips(datadir: Path, requests: list[bytes], count: int, warmup: int) -> tuple[float, list[float]]:
    with open(datadir / "apply.stderr", "wb") as stderr:
        started = time.perf_counter()
        with ApplyProcess(datadir, python=sys.executable, stderr=stderr) as apply:
            first = apply.request(requests[0])
            startup = time.perf_counter() - started
            if not first.startswith(b'{"status":"ok"'):
                raise SystemExit(f"first reply is not ok: {first[:300]!r}")
            for i in range(warmup):
                apply.request(requests[i % len(requests)])
            times = []
            for i in range(count):
                line = requests[i % len(requests)]
                t0 = time.perf_counter()
                reply = apply.request(line)
                times.append(time.perf_counter() - t0)
                if not reply.startswith(b'{"status":"ok"'):
                    raise SystemExit(f"error reply: {reply[:300]!r}")
            apply.close()
    return startup, times


def bare_apply(datadir: Path, requests: list[bytes], count: int, warmup: int) -> list[float]:
    """The loaded model's own cost for the same single instances, in this process, one thread."""
    import torch

    from lfengine import service

    torch.set_num_threads(1)
    model = service.load_model(str(datadir / f"{MODEL_PREFIX_NAME}.d"))
    instances = [json.loads(line) for line in requests]
    for i in range(warmup):
        model.apply([instances[i % len(instances)]], distribution=True)
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        model.apply([instances[i % len(instances)]], distribution=True)
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500, help="timed requests per model")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--maxepochs", type=int, default=2, help="training epochs (latency does not depend on it)"
    )
    parser.add_argument("--workdir", help="keep data directories and models here (default: a temporary dir)")
    parser.add_argument("--only", nargs="+", choices=sorted(OLD_P50_MS))
    args = parser.parse_args()
    if not LFDATA.is_dir():
        print(f"LF reference data not found at {LFDATA}", file=sys.stderr)
        return 1
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="gate-latency-"))
    results = []
    for name in args.only or sorted(OLD_P50_MS):
        datadir, trained = prepare(workdir, name, args.maxepochs)
        requests = requests_of(datadir)
        startup, times = round_trips(datadir, requests, args.requests, args.warmup)
        round_trip = summary_ms(times)
        bare = summary_ms(bare_apply(datadir, requests, args.requests, args.warmup))
        results.append(
            {
                "data": name,
                "requests": args.requests,
                "train_seconds": trained,
                "startup_ms": startup * 1000,
                "round_trip_ms": round_trip,
                "bare_apply_ms": bare,
                "old_p50_ms": OLD_P50_MS[name],
                "ratio_p50_to_old": round_trip["p50"] / OLD_P50_MS[name],
            }
        )
    columns = ("p50", "p90", "p99", "mean", "bare p50", "old p50", "ratio", "start")
    print(f"{'data':18} " + " ".join(f"{c:>8}" for c in columns) + "   (ms; ratio = p50 / old p50)")
    for r in results:
        rt = r["round_trip_ms"]
        print(
            f"{r['data']:18} {rt['p50']:8.2f} {rt['p90']:8.2f} {rt['p99']:8.2f} {rt['mean']:8.2f} "
            f"{r['bare_apply_ms']['p50']:8.2f} {r['old_p50_ms']:8.2f} {r['ratio_p50_to_old']:8.2f} "
            f"{r['startup_ms']:8.0f}"
        )
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "workdir": str(workdir)}
    (out / "gate_latency.json").write_text(json.dumps({"machine": meta, "results": results}, indent=2) + "\n")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
