"""Accuracy of lfengine's defaults on the shared LF files, seeds 1, 2, 3, against the targets.

    python bench/bench_accuracy.py [--jobs N] [--seeds 1 2 3] [--only NAME ...] [--set KEY=VALUE ...]
    python bench/bench_accuracy.py --modules [MODULE ...] [--jobs N] [--seeds 1 2 3]

Each run is ``lfengine train`` with default settings and a 10 % validation split; the figure is
the best validation score (the one the saved model has). Runs go in parallel subprocesses, each
limited to one thread so that they do not fight over cores. ``--modules`` trains each predefined
module on the shared file of its kind and the auto-built network on the same file, side by side
(the figures in docs/modules.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LFDATA = REPO.parent / "shared" / "lfdata"
sys.path.insert(0, str(REPO))

from bench.shared_files import shared_file_parser, train_arguments  # noqa: E402

# name -> (metric key in the best-validation metrics, old wrapper's figure, target)
TASKS = {
    "class-ionosphere": ("accuracy", "0.886-0.971", 0.93),
    "class-ngram-sp1": ("accuracy", "0.50-0.57", 0.66),
    "class-window-pos1": ("accuracy", "0.57-0.64", 0.74),
    "seq-pos1": ("accuracy", "0.73-0.74", 0.87),
    "seq-pos2": ("span_f1", "0.00", 0.60),
}


# predefined module -> the shared file of its kind
MODULE_TASKS = {
    "NerTagger": "seq-pos2",
    "PosTagger": "seq-pos1",
    "TextCnn": "class-ngram-sp1",
    "BiLstmAttentionClassifier": "class-ngram-sp1",
    "MlpClassifier": "class-window-pos1",
}
AUTO = "auto"


def run_one(name: str, seed: int, workdir: Path, extra: list[str], module: str = AUTO) -> dict:
    model_dir = workdir / f"{name}-{module}-{seed}"
    cmd = [
        sys.executable,
        "-m",
        "lfengine",
        *train_arguments(LFDATA / f"{name}.meta.json", model_dir, seed),
        *extra,
        *(["--module", module] if module != AUTO else []),
    ]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        return {"name": name, "module": module, "seed": seed, "error": proc.stderr[-2000:]}
    result = json.loads(proc.stdout)
    metric = TASKS[name][0]
    return {
        "name": name,
        "module": module,
        "seed": seed,
        "score": result["best"].get(metric, 0.0),
        "epochs": result["epochs"],
        "best_epoch": result["best_epoch"],
        "seconds": seconds,
        "sec_per_epoch": result["seconds"] / max(result["epochs"], 1),
    }


def run_all(pairs: list[tuple[str, str]], seeds: list[int], extra: list[str], jobs: int) -> tuple[list, list]:
    """Every (data, module) pair with every seed, in parallel; failures are printed."""
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(run_one, n, s, Path(tmp), extra, m) for n, m in pairs for s in seeds]
        results = [f.result() for f in futures]
    failed = [r for r in results if "error" in r]
    for r in failed:
        print(f"FAILED {r['module']} on {r['name']} seed {r['seed']}:\n{r['error']}", file=sys.stderr)
    return results, failed


def finish(summary: dict, json_path: str | None, failed: list) -> int:
    """Write the summary if asked; the exit status (1 when a run failed)."""
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2))
    return 1 if failed else 0


def main() -> int:
    parser = shared_file_parser(__doc__, list(TASKS), "passed to lfengine train as --set")
    parser.add_argument(
        "--modules",
        nargs="*",
        choices=sorted(MODULE_TASKS),
        help="predefined modules against the auto network on their files (none named: all)",
    )
    args = parser.parse_args()
    if not LFDATA.is_dir():
        print(f"skipped: {LFDATA} not found (the shared LF data sits next to the repository)")
        return 0
    if args.modules is not None:
        return compare_modules(args.modules or list(MODULE_TASKS), args)
    names = args.only or list(TASKS)
    extra = [a for s in args.set for a in ("--set", s)]
    results, failed = run_all([(n, AUTO) for n in names], args.seeds, extra, args.jobs)
    print(
        f"{'data':20} {'metric':9} {'old wrapper':>12} {'target':>7} {'mean':>7} {'min':>7}  scores"
        f"  {'epochs':>10} {'s/epoch':>8}  ok"
    )
    summary = {}
    for name in names:
        runs = [r for r in results if r["name"] == name and "error" not in r]
        if not runs:
            continue
        metric, old, target = TASKS[name]
        scores = [r["score"] for r in runs]
        mean, low = statistics.mean(scores), min(scores)
        summary[name] = {
            "metric": metric,
            "mean": mean,
            "min": low,
            "scores": scores,
            "target": target,
            "sec_per_epoch": statistics.mean(r["sec_per_epoch"] for r in runs),
            "runs": runs,
        }
        print(
            f"{name:20} {metric:9} {old:>12} {target:>7.2f} {mean:>7.4f} {low:>7.4f}  "
            f"{' '.join(f'{s:.3f}' for s in scores)}  {' '.join(str(r['epochs']) for r in runs):>10} "
            f"{summary[name]['sec_per_epoch']:>8.2f}  {'yes' if mean >= target else 'NO'}"
        )
    return finish(summary, args.json, failed)


def compare_modules(modules: list[str], args: argparse.Namespace) -> int:
    """Each module and the auto network on the module's file, same seeds, in one run."""
    extra = [a for s in args.set for a in ("--set", s)]
    pairs = [(MODULE_TASKS[m], m) for m in modules]
    pairs += sorted({(MODULE_TASKS[m], AUTO) for m in modules})
    results, failed = run_all(pairs, args.seeds, extra, args.jobs)
    print(f"{'module':26} {'data':18} {'metric':9} {'mean':>7}  scores (seeds {args.seeds})  epochs  s/epoch")
    summary: dict[str, dict] = {}
    for name, module in pairs:
        runs = [r for r in results if (r["name"], r["module"]) == (name, module) and "error" not in r]
        if not runs:
            continue
        scores = [r["score"] for r in runs]
        entry = {
            "data": name,
            "metric": TASKS[name][0],
            "mean": statistics.mean(scores),
            "scores": scores,
            "epochs": [r["epochs"] for r in runs],
            "sec_per_epoch": statistics.mean(r["sec_per_epoch"] for r in runs),
        }
        summary[f"{module} {name}"] = entry
        print(
            f"{module:26} {name:18} {entry['metric']:9} {entry['mean']:>7.4f}  "
            f"{' / '.join(f'{s:.3f}' for s in scores):24} {' '.join(map(str, entry['epochs'])):>8} "
            f"{entry['sec_per_epoch']:>7.2f}"
        )
    return finish(summary, args.json, failed)


if __name__ == "__main__":
    sys.exit(main())
