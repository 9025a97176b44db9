"""What the text classifier's network adds to its linear model, share by share, on unseen documents.

    python bench/bench_share.py [--only polarity-1k ...] [--seeds 1 2 3] [--jobs N] [--set key=value]
                                [--json FILE]

The auto text classifier predicts ``share * linear + (1 - share) * network`` and sets the share
on its validation split (builder/linear_text.py). This bench asks how much any rule for that
share could gain. For each data set (those of bench_baselines: shared ``class-*`` files and
made-up polarity sets) and seed, lfengine trains with its defaults; then the saved model's
network and linear model (through its gates, with ``gated_evidence``) give their label
distributions apart, on that seed's validation split
(rebuilt from the stored options, as training drew it) and on the held-out test. Printed, as
test accuracy (mean over seeds, then per seed):

* ``chosen``: the share lfengine chose (its real predictions);
* ``one-se``: the largest share whose validation log-loss is within one standard error of the
  lowest (Breiman et al. 1984), the error being that of the paired per-item differences;
* ``posterior``: the share's posterior mean under a uniform prior, the validation likelihood;
* ``oracle``: per run, the share that scores best on the test itself: a bound that no rule
  choosing the share of a run (on a grid of 0.05) can beat with these networks;
* ``share S``: every seed at the one share S, 0 (the network alone) to 1 (the linear model
  alone); ``*`` marks the best of these, what the best single share for all runs would reach.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baselines_text import Split, _prepare, data_names  # noqa: E402
from bench.bench_generalisation import _lfengine  # noqa: E402
from bench.shared_files import shared_file_parser, train_arguments  # noqa: E402
from lfengine.builder.linear_text import SHARES  # noqa: E402
from lfengine.data.batching import collate, split_indices  # noqa: E402
from lfengine.data.encoding import Encoded  # noqa: E402
from lfengine.data.reader import read_data  # noqa: E402
from lfengine.options import TrainOptions  # noqa: E402
from lfengine.planning import split_sizes  # noqa: E402
from lfengine.service import load_model  # noqa: E402

#: (network, linear, gold): each model's (N, C) label distributions and the (N,) gold label ids
Probabilities = tuple[np.ndarray, np.ndarray, np.ndarray]


def distributions(model_dir: Path, train_file: Path, test_file: Path) -> dict:
    """The chosen share, and the network's and linear model's distributions on the run's
    validation split and on the test file."""
    model = load_model(str(model_dir))
    network = model.predictor.model.eval()
    if getattr(network, "linear", None) is None or not network.linear.fitted:
        raise SystemExit(f"{model_dir}: this model carries no fitted linear text model")
    options = TrainOptions.from_dict(model.metadata["training"]["options"])
    train = read_data(model.codec, str(train_file)).data  # encoded only: nothing to predict
    validation = split_sizes(len(train), options)[1]
    _, val_idx = split_indices(
        len(train), validation, seed=options.seed, shuffle=options.shuffle, valsplit=options.valsplit
    )
    report, test, _ = model.predictor.evaluate_file(str(test_file))
    found = {"share": float(network.linear.share), "test": _probabilities(network, test)}
    rebuilt = accuracy(found["share"], found["test"])
    if abs(rebuilt - report["accuracy"]) > 2 / len(test):  # float32 vs float64 ties aside
        raise RuntimeError(
            f"{model_dir}: rebuilt accuracy {rebuilt:.4f}, lfengine's {report['accuracy']:.4f}"
        )
    return {**found, "val": _probabilities(network, train.subset(val_idx))}


def _probabilities(network: torch.nn.Module, data: Encoded) -> Probabilities:
    mine, theirs = [], []
    with torch.no_grad():
        for start in range(0, len(data), 512):
            batch = collate(data, np.arange(start, min(start + 512, len(data))))
            theirs.append(torch.softmax(network(batch).double(), dim=-1).numpy())
            # the linear side of the mix: through its gates where it has them (gated_evidence)
            gated = network.gated_scores(batch) if getattr(network, "gate", None) is not None else None
            own = network.linear.probabilities(batch)
            linear = own if gated is None else torch.softmax(gated.double(), dim=-1)
            mine.append(linear.numpy())
    return np.concatenate(theirs), np.concatenate(mine), np.asarray(data.targets, dtype=np.int64)


def accuracy(share: float, probabilities: Probabilities) -> float:
    network, linear, gold = probabilities
    return float(((share * linear + (1 - share) * network).argmax(axis=1) == gold).mean())


def _item_losses(probabilities: Probabilities) -> np.ndarray:
    """(shares, N) log-loss of each validation item under each share of SHARES."""
    network, linear, gold = probabilities
    rows = np.arange(len(gold))
    known = gold < network.shape[1]  # a gold label the model never saw: no share helps
    mine, theirs = linear[rows[known], gold[known]], network[rows[known], gold[known]]
    shares = np.asarray(SHARES)[:, None]
    return -np.log(np.clip(shares * mine + (1 - shares) * theirs, 1e-30, None))


def one_se_share(probabilities: Probabilities) -> float:
    losses = _item_losses(probabilities)
    means = losses.mean(axis=1)
    best = int(means.argmin())
    differences = losses - losses[best]
    errors = differences.std(axis=1, ddof=1) / np.sqrt(max(losses.shape[1], 1))
    return SHARES[int(np.flatnonzero(means <= means[best] + np.nan_to_num(errors)).max())]


def posterior_share(probabilities: Probabilities) -> float:
    likelihood = -_item_losses(probabilities).sum(axis=1)
    weights = np.exp(likelihood - likelihood.max())
    return float((weights * np.asarray(SHARES)).sum() / weights.sum())


def run(split: Split, seed: int, work: Path, settings: list[str]) -> dict:
    model_dir = work / f"{split.name}-{seed}"
    proc = _lfengine(
        train_arguments(split.meta, model_dir, seed) + [a for s in settings for a in ("--set", s)]
    )
    if proc.returncode != 0:
        raise RuntimeError(f"lfengine failed on {split.name}, seed {seed}:\n{proc.stderr[-2000:]}")
    train_file = split.meta.with_name(split.meta.name.replace(".meta.json", ".data.json"))
    return distributions(model_dir, train_file, split.test)


def table(name: str, runs: list[dict]) -> list[dict]:
    """One row per rule and per fixed share: test accuracy for every seed."""
    rules = {
        "chosen": [r["share"] for r in runs],
        "one-se": [one_se_share(r["val"]) for r in runs],
        "posterior": [posterior_share(r["val"]) for r in runs],
    }
    rules["oracle"] = [max(SHARES, key=lambda share, r=r: accuracy(share, r["test"])) for r in runs]
    rows = [
        {
            "data": name,
            "rule": rule,
            "shares": shares,
            "scores": [accuracy(s, r["test"]) for s, r in zip(shares, runs)],
        }
        for rule, shares in rules.items()
    ]
    for share in SHARES:
        scores = [accuracy(share, r["test"]) for r in runs]
        rows.append(
            {"data": name, "rule": f"share {share:.2f}", "shares": [share] * len(runs), "scores": scores}
        )
    return rows


def main() -> int:
    names = data_names(quick=False)
    parser = shared_file_parser(__doc__, names, "a training setting, key=value (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    selected = args.only or [n for n in names if n.startswith("polarity")]
    out: list[dict] = []
    print(f"{'data':<18} {'rule':<12} {'mean':>6}   per seed (share chosen)")
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        work = Path(tmp)
        for name in selected:
            split = _prepare(name, work)
            runs = list(pool.map(lambda seed, s=split: run(s, seed, work, args.set), args.seeds))
            rows = table(name, runs)
            best = max(statistics.mean(r["scores"]) for r in rows if r["rule"].startswith("share"))
            for r in rows:
                mean = statistics.mean(r["scores"])
                mark = "*" if r["rule"].startswith("share") and mean == best else " "
                seeds = " ".join(f"{s:.3f}" for s in r["scores"])
                chosen = (
                    ""
                    if r["rule"].startswith("share")
                    else "  (" + " ".join(f"{s:.2f}" for s in r["shares"]) + ")"
                )
                print(f"{name:<18} {r['rule']:<12} {mean:.3f}{mark}  {seeds}{chosen}")
            out += rows
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
