"""lfengine's defaults vs the classical models users already have, on unseen documents, one table.

    python bench/bench_baselines.py [--seeds 1 2 3 4 5] [--only NAME ...] [--quick] [--json FILE]
                                    [--jobs N] [--variant NAME='--set key=value ...']

Rows come from sibling modules, each exposing ``rows(seeds, quick, jobs=, only=) -> list[dict]``
with keys data, task, train_size, metric, system, seed, score (sequence rows of lfengine also
known, unknown, epochs):

* ``baselines_text`` (classification): every shared ``class-*`` file and made-up polarity sets
  of 1k-8k training sentences; lfengine vs TF-IDF / NB-weighted logistic regression (token
  lists) or one-hot logistic regression / linear SVM (window and numeric columns);
* ``baselines_seq`` (sequence tagging, when present): lfengine vs a linear-chain CRF.

Every data set is split as bench_generalisation splits it: train on the first 80 % of the file,
test on the last 20 % (documents never seen); a made-up polarity set is written with 2,500
sentences after its training ones, and those are its test set (``baselines_text.HELD_OUT``: the
250 of a 20 % tail could not tell the systems apart). Printed per data set and system: mean ± sd over
the seeds and the scores per seed; ``*`` marks the best mean; per data set, lfengine's margin over
the best classical system. ``--quick``: shared files only, lfengine at 2 epochs (a smoke test).
Needs the bench extra: ``pip install -e '.[bench]'`` (scikit-learn, sklearn-crfsuite).
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

INSTALL = "pip install -e '.[bench]'  (or: pip install scikit-learn sklearn-crfsuite)"


def _missing_dependency() -> str | None:
    for module in ("sklearn",):
        try:
            importlib.import_module(module)
        except ImportError:
            return module
    return None


def _families() -> list:
    """The row modules: baselines_text always, baselines_seq if it exists."""
    families = [importlib.import_module("bench.baselines_text")]
    try:
        families.append(importlib.import_module("bench.baselines_seq"))
    except ModuleNotFoundError as err:
        if err.name != "bench.baselines_seq":
            raise
    return families


def is_lfengine(system: str) -> bool:
    return system.startswith("lfengine")


def table(results: list[dict]) -> list[str]:
    """The combined table: one line per (data, system), a margin line per data set."""
    lines = [f"{'data':18} {'train':>6} {'metric':9} {'system':22} {'mean':>6} {'sd':>6}   per seed"]
    datasets: dict[str, list[dict]] = {}
    for r in results:
        datasets.setdefault(r["data"], []).append(r)
    for name, runs in datasets.items():
        systems: dict[str, list[float]] = {}
        for r in runs:
            systems.setdefault(r["system"], []).append(r["score"])
        means = {s: statistics.mean(v) for s, v in systems.items()}
        best = max(means, key=means.get)
        for system, scores in systems.items():
            sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
            mark = "*" if system == best else " "
            lines.append(
                f"{name:18} {runs[0]['train_size']:>6} {runs[0]['metric']:9} {system:22} "
                f"{means[system]:>6.3f} {sd:>6.3f} {mark} " + " ".join(f"{s:.3f}" for s in scores)
            )
        classical = [s for s in means if not is_lfengine(s)]
        if classical:
            top = max(classical, key=means.get)
            for system in (s for s in means if is_lfengine(s)):
                lines.append(
                    f"{name:18} {'':>6} {'':9} {system + ' - ' + top:22} {means[system] - means[top]:>+6.3f}"
                )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--only", nargs="+", help="these data sets only (shared file or generated names)")
    parser.add_argument("--quick", action="store_true", help="shared files only, lfengine at 2 epochs")
    parser.add_argument("--json", help="also write every row to this file")
    parser.add_argument("--jobs", type=int, default=2, help="lfengine runs in parallel")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="an extra lfengine row: NAME='train arguments' (e.g. wide0='--set wide_ngrams=0')",
    )
    args = parser.parse_args()
    missing = _missing_dependency()
    if missing:
        print(f"skipped: the baselines need {missing!r}; install the bench extra: {INSTALL}")
        return 0
    results: list[dict] = []
    for family in _families():
        if hasattr(family, "VARIANTS"):
            for item in args.variant:
                key, _, extra = item.partition("=")
                family.VARIANTS[f"lfengine-{key}"] = extra.split()
        results += family.rows(args.seeds, args.quick, jobs=args.jobs, only=args.only)
    print("\n".join(table(results)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
