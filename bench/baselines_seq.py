"""Sequence tagging on unseen documents: lfengine's defaults beside linear-chain CRFs.

    python bench/baselines_seq.py [--seeds 1 2 3 4 5] [--quick] [--jobs 2] [--set KEY=VALUE ...]
                                  [--sizes 1500 5000] [--only NAME ...] [--json FILE]

Every data set is split as bench_generalisation does: the first 80 % of the lines become a
training export of their own (meta recomputed), the last 20 % the test tail (documents the model
has never seen). Data sets: the shared seq-pos1 and seq-pos2 files, and the generated NER-like
and POS-like corpora of bench/seq_corpora.py (1,500 and 5,000 sentences, or
``--sizes``). ``--quick`` (a smoke test): the shared files only, lfengine at 2 epochs.
Systems:

* ``lfengine defaults``: ``lfengine train`` (one CPU thread) then ``lfengine evaluate`` on the tail;
* ``CRF (file columns)``: sklearn-crfsuite over the export's columns of each token as they are
  (string values as indicator features, numbers as values), as GATE's own CRF sees them;
* ``CRF (+prefix/suffix/casing)``: those plus, from the token-string column (the one lfengine
  reads characters from), the lowercased word, 1-4 character prefixes and suffixes, casing and
  digit flags, the word shape, and the lowercased word and casing of the neighbours (the usual
  CoNLL feature set). L-BFGS, c1 = c2 = 0.1, 100 iterations: deterministic, so one fit serves
  every seed.

Metric: span F1 (LF chunk decoding, lfengine.evaluation.metrics) for chunk labels, token accuracy otherwise.
sklearn-crfsuite is a bench-only dependency (``pip install sklearn-crfsuite``, or the ``bench``
extra). ``rows`` is what bench/bench_baselines.py prints; run this file to see them alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_generalisation import LFDATA, _lfengine, split_export  # noqa: E402
from bench.seq_corpora import CORPORA  # noqa: E402
from bench.shared_files import train_arguments  # noqa: E402
from lfengine.data.codec import find_char_source  # noqa: E402
from lfengine.data.meta import read_meta  # noqa: E402
from lfengine.data.synthetic import word_shape  # noqa: E402
from lfengine.evaluation.metrics import decode_spans, is_chunk_label_set  # noqa: E402

SHARED = ("seq-pos1", "seq-pos2")
SYSTEMS = ("lfengine defaults", "CRF (file columns)", "CRF (+prefix/suffix/casing)")
INSTALL_HINT = "sklearn-crfsuite is missing: pip install sklearn-crfsuite (a bench-only dependency)"


def _crfsuite() -> Any:
    try:
        import sklearn_crfsuite
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        raise
    return sklearn_crfsuite


# --- data -----------------------------------------------------------------------------------------


def _records(path: Path) -> list[list]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _column_features(vector: list) -> dict[str, Any]:
    features: dict[str, Any] = {"bias": 1.0}
    for j, value in enumerate(vector):
        if isinstance(value, bool):
            features[f"c{j}"] = float(value)
        elif isinstance(value, (int, float)):
            features[f"c{j}"] = float(value)
        elif isinstance(value, list):
            for item in value:
                features[f"c{j}={item}"] = 1.0
        elif value is not None and value != "":
            features[f"c{j}={value}"] = 1.0
    return features


def _word_features(word: str, prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}lower={word.lower()}": 1.0,
        f"{prefix}title": float(word.istitle()),
        f"{prefix}upper": float(word.isupper()),
    }


def _derived_features(words: list[str], i: int) -> dict[str, Any]:
    word = words[i]
    features = _word_features(word, "")
    for k in range(1, 5):
        if len(word) >= k:
            features[f"pre{k}={word[:k]}"] = 1.0
            features[f"suf{k}={word[-k:]}"] = 1.0
    features[f"shape={word_shape(word)}"] = 1.0
    features["digit"] = float(word.isdigit())
    features["has_digit"] = float(any(ch.isdigit() for ch in word))
    features["hyphen"] = float("-" in word)
    features["first"] = float(i == 0)
    for offset in (-1, 1):
        j = i + offset
        if 0 <= j < len(words):
            features.update(_word_features(words[j], f"{offset}:"))
        else:
            features[f"{offset}:edge"] = 1.0
    return features


def _sentence_features(sequence: list[list], token_column: int | None, derived: bool) -> list[dict]:
    rows = [_column_features(vector) for vector in sequence]
    if derived and token_column is not None:
        words = [str(vector[token_column] or "") for vector in sequence]
        for i, row in enumerate(rows):
            row.update(_derived_features(words, i))
    return rows


def _score(gold: list[list[str]], predicted: list[list[str]], chunks: bool) -> float:
    if not chunks:
        pairs = [(g, p) for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True)]
        return sum(g == p for g, p in pairs) / max(len(pairs), 1)
    correct = n_gold = n_pred = 0
    for gs, ps in zip(gold, predicted, strict=True):
        gold_spans, pred_spans = set(decode_spans(gs)), set(decode_spans(ps))
        correct += len(gold_spans & pred_spans)
        n_gold, n_pred = n_gold + len(gold_spans), n_pred + len(pred_spans)
    precision, recall = correct / max(n_pred, 1), correct / max(n_gold, 1)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def crf_score(meta: Path, test: Path, derived: bool) -> float:
    """Train a CRF on the export of ``meta`` and score it on ``test``."""
    train = _records(meta.with_name(meta.name.replace(".meta.", ".data.")))
    tail = _records(test)
    token_column = find_char_source(read_meta(meta))
    labels = {label for _, seq_labels in train for label in seq_labels}
    crf = _crfsuite().CRF(
        algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=100, all_possible_transitions=True
    )
    crf.fit(
        [_sentence_features(seq, token_column, derived) for seq, _ in train],
        [[str(label) for label in seq_labels] for _, seq_labels in train],
    )
    predicted = crf.predict([_sentence_features(seq, token_column, derived) for seq, _ in tail])
    gold = [[str(label) for label in seq_labels] for _, seq_labels in tail]
    return _score(gold, predicted, is_chunk_label_set(sorted(labels)))


# --- lfengine -------------------------------------------------------------------------------------


def lfengine_run(meta: Path, test: Path, seed: int, workdir: Path, extra: list[str]) -> dict[str, Any]:
    """Train with the defaults (plus ``extra`` options) and evaluate on the tail."""
    model_dir = workdir / f"model-{seed}-{abs(hash(tuple(extra)))}"
    proc = _lfengine(train_arguments(meta, model_dir, seed) + extra)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    trained = json.loads(proc.stdout)
    proc = _lfengine(["evaluate", str(model_dir), str(test), "--json"])
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    report = json.loads(proc.stdout)
    spans = "spans" in report
    oov = report.get("oov") or {}

    def part(entry: dict | None) -> float | None:
        if not entry or not entry["count"]:
            return None
        return entry["spans"]["f1"] if spans else entry["accuracy"]

    return {
        "score": report["spans"]["overall"]["f1"] if spans else report["accuracy"],
        "known": part(oov.get("known")),
        "unknown": part(oov.get("unknown")),
        "epochs": trained["epochs"],
    }


# --- the data sets --------------------------------------------------------------------------------


#: Sizes (sentences before the 80/20 split) of the generated corpora.
SIZES = (1500, 5000)


def _datasets(sizes: tuple[int, ...]) -> list[tuple[str, Callable[[Path], Path]]]:
    """(name, writer of its full export into a folder -> that folder's meta path)."""
    sets: list[tuple[str, Callable[[Path], Path]]] = []
    for name in SHARED:
        if (LFDATA / f"{name}.meta.json").is_file():
            sets.append((name, lambda work, name=name: LFDATA / f"{name}.meta.json"))
    for size in sizes:
        for corpus, (writer, _) in CORPORA.items():
            sets.append((f"{corpus}-{size}", lambda work, w=writer, n=size: w(work, n, 7)))
    return sets


def _split(name: str, write: Callable[[Path], Path], work: Path) -> tuple[Path, Path, int]:
    meta = write(work / "full" / name)
    return split_export(meta.name.removesuffix(".meta.json"), work / "split" / name, source=meta.parent)


def rows(
    seeds: list[int],
    quick: bool,
    extra: list[str] | None = None,
    jobs: int = 2,
    only: list[str] | None = None,
    sizes: tuple[int, ...] = SIZES,
) -> list[dict]:
    """One row per data set, system and seed: data, task, train_size, metric, system, seed, score
    (lfengine rows also: known, unknown, epochs). ``quick``: the shared files only, lfengine at 2
    epochs; ``extra``: options for ``lfengine train``; ``only``: these data sets."""
    extra = (extra or []) + (["--max-epochs", "2"] if quick else [])
    out: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(jobs) as pool:
        work = Path(tmp)
        for name, write in _datasets(() if quick else sizes):
            if only and name not in only:
                continue
            meta, test, n_train = _split(name, write, work)
            labels = json.loads(meta.read_text(encoding="utf-8"))["targetStats"]["stringCounts"]
            chunks = is_chunk_label_set(sorted(labels))
            base = {
                "data": name,
                "task": "sequence",
                "train_size": n_train,
                "metric": "span_f1" if chunks else "accuracy",
            }
            runs = {seed: pool.submit(lfengine_run, meta, test, seed, work / name, extra) for seed in seeds}
            crfs = {derived: pool.submit(crf_score, meta, test, derived) for derived in (False, True)}
            for seed, future in runs.items():
                result = future.result()
                if "error" in result:
                    print(f"FAILED {name} seed {seed}:\n{result['error']}", file=sys.stderr)
                    continue
                details = {k: result[k] for k in ("known", "unknown", "epochs")}
                out.append({**base, "system": SYSTEMS[0], "seed": seed, "score": result["score"], **details})
            for derived, future in crfs.items():
                score = future.result()
                system = SYSTEMS[2] if derived else SYSTEMS[1]
                out += [{**base, "system": system, "seed": seed, "score": score} for seed in seeds]
    return out


def _mean(values: list) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.mean(values):.3f}" if values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--quick", action="store_true", help="shared files only, lfengine at 2 epochs")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="generated corpora sizes")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    parser.add_argument("--set", action="append", default=[], help="passed to lfengine train as --set")
    parser.add_argument("--only", nargs="+", help="these data sets (e.g. seq-pos2 ner-synth-1500)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    try:
        _crfsuite()
    except ImportError:
        return 1
    extra = [a for item in args.set for a in ("--set", item)]
    table = rows(args.seeds, args.quick, extra, args.jobs, args.only, tuple(args.sizes))
    print(
        f"{'data':18} {'train':>6} {'metric':9} {'system':28} {'mean':>6} {'known':>6} {'unknown':>7}"
        "  per seed"
    )
    keys = dict.fromkeys((r["data"], r["system"]) for r in table)
    for data, system in keys:
        runs = [r for r in table if r["data"] == data and r["system"] == system]
        first = runs[0]
        print(
            f"{data:18} {first['train_size']:>6} {first['metric']:9} {system:28} "
            f"{_mean([r['score'] for r in runs]):>6} {_mean([r.get('known') for r in runs]):>6} "
            f"{_mean([r.get('unknown') for r in runs]):>7}  " + " ".join(f"{r['score']:.3f}" for r in runs)
        )
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
