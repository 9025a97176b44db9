"""How models hold up on new documents: validation score vs score on the file's unseen tail.

    python bench/bench_generalisation.py [--jobs N] [--seeds 1 2 3] [--only NAME ...]

For each shared LF file the first 80 % of the lines become a training export of their own (the
meta statistics, and so the vocabularies, recomputed from those lines only, as LF would write
them) and the last 20 % the test set: LF writes documents in order, so the tail stands for
documents the model has never seen. ``lfengine train`` (with its own 10 % validation inside the
80 %) then ``lfengine evaluate`` on the tail, per seed, in two configurations side by side:

* before: the behaviour of lfengine 0.1, selected by options (random validation split, untrained
  rows used, no OOV training, constant learning rate, patience restarted by any gain; taggers
  without casing/shape flags);
* after: today's defaults.

Printed per file and configuration (means over the seeds): validation score, tail score, their
gap, the share of tail tokens (instances) whose token string is unknown to the model, the scores
on known and unknown ones, epochs and CPU seconds of training. Tail items whose gold label the
training part never has are scored as errors (evaluate's ``unseen_labels``); their count is
printed. Runs go in parallel subprocesses, one thread each; run it with ``nice`` on a shared
machine.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LFDATA = REPO.parent / "shared" / "lfdata"
sys.path.insert(0, str(REPO))

from bench.shared_files import shared_file_parser, train_arguments  # noqa: E402
from lfengine.data.synthetic import value_stats  # noqa: E402

#: name -> score key of evaluate's report
TASKS = {
    "class-ionosphere": "accuracy",
    "class-ngram-sp1": "accuracy",
    "class-window-pos1": "accuracy",
    "seq-pos1": "accuracy",
    "seq-pos2": "span_f1",
}
#: lfengine 0.1's behaviour, as options of today's code.
BEFORE = [
    "--valsplit",
    "random",
    "--set",
    "oov_untrained=false",
    "--set",
    "unk_replace=0",
    "--set",
    "word_dropout=0",
    "--set",
    "lr_decay=1",
    "--set",
    "es_min_delta=0",
    "--set",
    "word_shape=false",
    "--set",
    "hidden_layers=1",
]
CONFIGS = {"before": BEFORE, "after": []}


def split_export(
    name: str, workdir: Path, share: float = 0.8, source: Path = LFDATA, train_lines: int | None = None
) -> tuple[Path, Path, int]:
    """Write ``name``'s first ``share`` of lines (or its first ``train_lines``) as an LF export
    (meta recomputed) and the rest as a test file; returns (meta path, test path, training lines).
    ``source``: where ``name``'s meta and data files are (the shared files by default)."""
    meta = json.loads((source / f"{name}.meta.json").read_text(encoding="utf-8"))
    lines = (source / f"{name}.data.json").read_text(encoding="utf-8").splitlines()
    cut = int(len(lines) * share) if train_lines is None else train_lines
    head, tail = lines[:cut], lines[cut:]
    records = [json.loads(line) for line in head]
    if meta["isSequence"]:
        vectors = [v for seq, _ in records for v in seq]
        targets = [t for _, labels in records for t in labels]
        lengths = [len(seq) for seq, _ in records]
        meta["sequLengths.min"], meta["sequLengths.max"] = float(min(lengths)), float(max(lengths))
        meta["sequLengths.mean"] = statistics.mean(lengths)
        meta["sequLengths.variance"] = statistics.variance(lengths) if len(lengths) > 1 else 0.0
    else:
        vectors = [v for v, _ in records]
        targets = [t for _, t in records]
    columns = list(zip(*vectors))
    meta["featureStats"] = {n: value_stats(columns[j]) for j, n in enumerate(meta["featureNames"])}
    meta["targetStats"] = value_stats(targets)
    meta["linesWritten"] = len(head)
    folder = workdir / name
    folder.mkdir(parents=True)
    data_path = folder / f"{name}.data.json"
    data_path.write_text("\n".join(head) + "\n", encoding="utf-8")
    meta["dataFile"] = str(data_path)
    meta_path = folder / f"{name}.meta.json"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    test_path = folder / "tail.data.json"
    test_path.write_text("\n".join(tail) + "\n", encoding="utf-8")
    return meta_path, test_path, len(head)


def _lfengine(args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "lfengine", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=3600)


def run_one(name: str, config: str, seed: int, meta: Path, test: Path, workdir: Path) -> dict:
    model_dir = workdir / f"{name}-{config}-{seed}"
    proc = _lfengine(train_arguments(meta, model_dir, seed) + CONFIGS[config])
    if proc.returncode != 0:
        return {"name": name, "config": config, "seed": seed, "error": proc.stderr[-2000:]}
    trained = json.loads(proc.stdout)
    proc = _lfengine(["evaluate", str(model_dir), str(test), "--json"])
    if proc.returncode != 0:
        return {"name": name, "config": config, "seed": seed, "error": proc.stderr[-2000:]}
    report = json.loads(proc.stdout)
    key = TASKS[name]
    history = json.loads((model_dir / "model.json").read_text())["metadata"]["training"]["history"]
    best = [h for h in history if h.get("best")]
    oov = report.get("oov") or {}

    def part(entry: dict | None) -> float | None:
        if not entry or not entry["count"]:
            return None
        return entry["spans"]["f1"] if key == "span_f1" else entry["accuracy"]

    known, unknown = oov.get("known"), oov.get("unknown")
    return {
        "name": name,
        "config": config,
        "seed": seed,
        "val": trained["best"].get(key, 0.0),
        "tail": report["spans"]["overall"]["f1"] if key == "span_f1" else report["accuracy"],
        "unknown_share": unknown["count"] / max(known["count"] + unknown["count"], 1) if unknown else None,
        "known": part(known),
        "unknown": part(unknown),
        "unseen_labels": report.get("unseen_labels", {}).get("count", 0),
        "epochs": trained["epochs"],
        "best_epoch": trained["best_epoch"],
        "cpu_to_best": best[-1].get("cpu_seconds") if best else None,
        "cpu": history[-1].get("cpu_seconds", 0.0) if history else 0.0,
    }


def _mean(values: list) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.mean(values):.3f}" if values else "-"


def main() -> int:
    parser = shared_file_parser(__doc__, list(TASKS), "passed to the 'after' runs as --set (to try settings)")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--valsplit", choices=("random", "tail"), help="passed to the 'after' runs")
    args = parser.parse_args()
    CONFIGS["after"] = [a for item in args.set for a in ("--set", item)]
    if args.valsplit:
        CONFIGS["after"] += ["--valsplit", args.valsplit]
    if not LFDATA.is_dir():
        print(f"skipped: {LFDATA} not found (the shared LF data sits next to the repository)")
        return 0
    names = args.only or list(TASKS)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        work = Path(tmp)
        exports = {name: split_export(name, work) for name in names}
        futures = [
            pool.submit(run_one, n, c, s, exports[n][0], exports[n][1], work)
            for n in names
            for c in args.configs
            for s in args.seeds
        ]
        results = [f.result() for f in futures]
    for r in results:
        if "error" in r:
            print(f"FAILED {r['name']} {r['config']} seed {r['seed']}:\n{r['error']}", file=sys.stderr)
    print(
        f"{'data':18} {'metric':9} {'config':7} {'valid':>6} {'tail':>6} {'gap':>7} {'unk%':>6} "
        f"{'known':>6} {'unknown':>7} {'epochs':>7} {'CPU s':>7}  tail per seed"
    )
    for name in names:
        for config in args.configs:
            runs = [r for r in results if r["name"] == name and r["config"] == config and "error" not in r]
            if not runs:
                continue
            val, tail = _mean([r["val"] for r in runs]), _mean([r["tail"] for r in runs])
            gap = statistics.mean(r["val"] - r["tail"] for r in runs)
            share = [r["unknown_share"] for r in runs if r["unknown_share"] is not None]
            print(
                f"{name:18} {TASKS[name]:9} {config:7} {val:>6} {tail:>6} {gap:>+7.3f} "
                f"{(f'{100 * statistics.mean(share):.1f}' if share else '-'):>6} "
                f"{_mean([r['known'] for r in runs]):>6} {_mean([r['unknown'] for r in runs]):>7} "
                f"{statistics.mean(r['epochs'] for r in runs):>7.1f} "
                f"{statistics.mean(r['cpu'] for r in runs):>7.1f}"
                "  " + " ".join(f"{r['tail']:.3f}" for r in runs)
            )
    for name in names:
        runs = [r for r in results if r["name"] == name and "error" not in r]
        unseen = max((r["unseen_labels"] for r in runs), default=0)
        if unseen:
            print(f"{name}: {unseen} tail items have a gold label unseen in training (scored as errors)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
