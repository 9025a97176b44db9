"""Accuracy on class-window-pos1 with and without previous-label dropout, measured two ways:
on the validation split as exported (gold gate.LF.target columns) and as GATE applies a model
(those columns empty, gate-plugin.md §8 item 8).

    python bench/bench_previous_labels.py [--seeds 1 2 3] [--rates 0 0.5] [--max-epochs N]

``--max-epochs`` caps every run (default: lfengine's own epoch limit and early stopping).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from lfengine import service
from lfengine.data.batching import split_indices
from lfengine.data.meta import read_meta
from lfengine.data.reader import read_data
from lfengine.options import TrainOptions

REPO = Path(__file__).resolve().parents[1]
META = REPO.parent / "shared" / "lfdata" / "class-window-pos1.meta.json"


def measure(seed: int, rate: float, workdir: Path, max_epochs: int | None = None) -> tuple[float, float]:
    options = TrainOptions(
        seed=seed, threads=1, device="cpu", max_epochs=max_epochs, model={"previous_label_dropout": rate}
    )
    model_dir = workdir / f"m-{seed}-{rate}"
    service.train(str(META), str(model_dir), options)
    model = service.load_model(str(model_dir))
    codec = model.codec
    data = read_data(codec, read_meta(META).data_path()).data
    _, val_idx = split_indices(len(data), None, seed=seed)
    val = data.subset(val_idx)
    as_exported = model.predictor.evaluate(val)["accuracy"]
    val.nominal[:, codec.previous_label_columns] = 0  # "" as GATE sends at application
    as_applied = model.predictor.evaluate(val)["accuracy"]
    return as_exported, as_applied


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--max-epochs", type=int, help="cap on the epochs of every run")
    args = parser.parse_args()
    if not META.is_file():
        print(f"skipped: {META} not found")
        return 0
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    print(f"{'previous_label_dropout':>22} {'gold previous labels':>21} {'empty (as GATE applies)':>24}")
    with tempfile.TemporaryDirectory() as tmp:
        for rate in args.rates:
            runs = [measure(seed, rate, Path(tmp), args.max_epochs) for seed in args.seeds]
            gold = statistics.mean(r[0] for r in runs)
            empty = statistics.mean(r[1] for r in runs)
            print(
                f"{rate:>22.2f} {gold:>21.4f} {empty:>24.4f}   per seed: "
                + ", ".join(f"{a:.3f}/{b:.3f}" for a, b in runs)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
