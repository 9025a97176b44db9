"""Epochs and CPU time the default training needs on a 12,000-sentence tagging set.

    python bench/bench_time_to_quality.py [--sentences 12000] [--seed 1] [--max-epochs N]

Writes a synthetic chunk-labelled corpus (lfengine/data/synthetic.py) of ``sentences`` training
sentences plus a quarter as many further sentences as the test set, then trains with lfengine
0.1's behaviour (the ``before`` options of bench_generalisation.py: constant learning rate,
patience restarted by any gain) and with today's defaults, side by side, one thread each, and
prints epochs run, the best epoch, CPU seconds in all and to the best model, and the test
token accuracy and span F1. ``--max-epochs`` caps both runs (the cap is printed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_generalisation import BEFORE  # noqa: E402
from lfengine.data.synthetic import LfAttribute, write_lf, write_sequence_corpus  # noqa: E402


def _lfengine(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "lfengine", *args], capture_output=True, text=True, cwd=REPO, timeout=7200
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout)


def run(config: str, meta: Path, test: Path, work: Path, seed: int, cap: list[str]) -> dict:
    model = work / config
    extra = BEFORE if config == "before" else []
    trained = _lfengine(
        ["train", str(meta), str(model), "--seed", str(seed), "--threads", "1", "--device", "cpu", "--json"]
        + extra
        + cap
    )
    report = _lfengine(["evaluate", str(model), str(test), "--json"])
    history = json.loads((model / "model.json").read_text())["metadata"]["training"]["history"]
    best = [h for h in history if h["best"]][-1]
    return {
        "config": config,
        "epochs": trained["epochs"],
        "best_epoch": trained["best_epoch"],
        "cpu": history[-1]["cpu_seconds"],
        "cpu_to_best": best["cpu_seconds"],
        "accuracy": report["accuracy"],
        "span_f1": report["spans"]["overall"]["f1"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=12000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-epochs", type=int)
    args = parser.parse_args()
    cap = ["--max-epochs", str(args.max_epochs)] if args.max_epochs else []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        total = args.sentences + args.sentences // 4
        full_meta = write_sequence_corpus(work / "full", total, seed=7)
        lines = full_meta.with_name("seq-synth.data.json").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        # The training export holds the first sentences only (its meta from them alone).
        attributes = [
            LfAttribute("A", "string", emb_id="token"),
            LfAttribute("L", "shape", window=(-1, 1), within="Sentence", emb_id="shape", emb_dims=4),
        ]
        meta = write_lf(work / "train", "seq-synth", attributes, records[: args.sentences], is_sequence=True)
        test = work / "test.data.json"
        test.write_text("\n".join(lines[args.sentences :]) + "\n")
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(run, c, meta, test, work, args.seed, cap) for c in ("before", "after")]
            results = [f.result() for f in futures]
    print(
        f"{args.sentences} training sentences, {total - args.sentences} test sentences"
        + (f", epochs capped at {args.max_epochs}" if cap else "")
    )
    print(
        f"{'config':7} {'epochs':>6} {'best':>5} {'CPU s':>8} {'to best':>8} {'test acc':>9} {'span F1':>8}"
    )
    for r in results:
        print(
            f"{r['config']:7} {r['epochs']:>6} {r['best_epoch']:>5} {r['cpu']:>8.1f}"
            f" {r['cpu_to_best']:>8.1f} "
            f"{r['accuracy']:>9.4f} {r['span_f1']:>8.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
