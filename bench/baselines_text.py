"""Classification rows of bench_baselines: lfengine's defaults vs linear models on the same data.

Data: every shared classification file (``class-*``) and made-up polarity sets of 1k, 2k, 4k and 8k
training sentences (bench/polarity_data.py). Each shared file is split as bench_generalisation
splits: the first 80 % of the lines become a training export of their own (meta recomputed), the
last 20 % the test set (unseen documents); a polarity set's training sentences are followed by
2,500 held-out ones, its test set. lfengine trains on the training part with its defaults (holding
out 10 % of it to validate) and is evaluated on the test set, once per seed.

The classical systems (scikit-learn) see the same columns, and choose their regularisation C
from 0.1-10 on the last 10 % of the training part (lfengine also holds out 10 % to validate)
before they are refit on all of it:

* token-list data: TF-IDF logistic regression over uni+bigrams, and NB-weighted logistic
  regression (Wang & Manning 2012's NBSVM with a logistic loss: binary uni+bigram features
  scaled by their log-count ratio, one-vs-rest);
* nominal/numeric data: one-hot (numbers scaled to [-1, 1]) logistic regression and linear SVM.

``rows(seeds, quick, jobs, only)`` returns one dict per (data, system, seed); see bench_baselines.py.
"""

from __future__ import annotations

import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.bench_generalisation import LFDATA, _lfengine, split_export
from bench.polarity_data import write_polarity_corpus
from bench.shared_files import train_arguments

#: extra lfengine configurations, name -> train arguments (bench_baselines --variant)
VARIANTS: dict[str, list[str]] = {}
#: generated polarity sets: name -> training sentences, each followed in its file by the same
#: number of held-out ones: 2,500 sentences of reviews never seen (the 250 of a 20 % tail of
#: polarity-1k judged a model within +-0.03, more than the gaps between systems). The generator
#: writes the same first sentences whatever the file's length, so the training part is that of a
#: shorter file.
GENERATED = {"polarity-1k": 1000, "polarity-2k": 2000, "polarity-4k": 4000, "polarity-8k": 8000}
HELD_OUT = 2500
GENERATOR_SEED = 18
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)


@dataclass
class Split:
    name: str
    meta: Path
    test: Path
    n_train: int


def data_names(quick: bool) -> list[str]:
    shared = sorted(p.name[: -len(".meta.json")] for p in LFDATA.glob("class-*.meta.json"))
    return shared + ([] if quick else list(GENERATED))


def _prepare(name: str, work: Path) -> Split:
    source, train_lines = LFDATA, None  # a shared file: its 80/20 split
    if name in GENERATED:
        source, train_lines = work / "generated", GENERATED[name]
        write_polarity_corpus(source, train_lines + HELD_OUT, GENERATOR_SEED, base=name)
    meta, test, n_train = split_export(name, work, source=source, train_lines=train_lines)
    return Split(name, meta, test, n_train)


# --- reading an export for scikit-learn --------------------------------------------------------


def _records(path: Path) -> list[list]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _kinds(meta_path: Path) -> list[str]:
    """Per column: 'list', 'numeric' or 'nominal'."""
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    kinds = []
    for feature in meta["features"]:
        if feature["kind"] == "N":
            kinds.append("list")
        else:
            kinds.append("numeric" if feature["datatype"] == "numeric" else "nominal")
    return kinds


def _ngrams(tokens: list) -> list[str]:
    words = [str(t) for t in tokens]
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def _text_features(vector: list, kinds: list[str]) -> list[str]:
    return [f"{j}:{g}" for j, kind in enumerate(kinds) if kind == "list" for g in _ngrams(vector[j])]


def _table_features(vector: list, kinds: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for j, (value, kind) in enumerate(zip(vector, kinds, strict=True)):
        if kind == "numeric":
            out[f"{j}"] = float(value or 0.0)
        elif kind == "nominal":
            out[f"{j}={value}"] = 1.0
        else:
            for token in value:
                out[f"{j}:{token}"] = out.get(f"{j}:{token}", 0.0) + 1.0
    return out


# --- the classical systems ---------------------------------------------------------------------


def _nb_lr(c: float, seed: int):
    """NB-weighted logistic regression, one-vs-rest over binary uni+bigram features."""
    from sklearn.linear_model import LogisticRegression

    class NbLr:
        def fit(self, x, y):
            x = (x > 0).astype(np.float64)
            self.classes = np.unique(y)
            self.models = []
            for label in self.classes if len(self.classes) > 2 else self.classes[1:]:
                p = np.asarray(x[y == label].sum(axis=0)).ravel() + 1.0
                q = np.asarray(x[y != label].sum(axis=0)).ravel() + 1.0
                r = np.log((p / p.sum()) / (q / q.sum()))
                model = LogisticRegression(C=c, solver="liblinear", random_state=seed)
                model.fit(x.multiply(r).tocsr(), (y == label).astype(int))
                self.models.append((r, model))
            return self

        def predict(self, x):
            x = (x > 0).astype(np.float64)
            scores = np.stack([m.decision_function(x.multiply(r).tocsr()) for r, m in self.models], axis=1)
            if len(self.classes) == 2:
                return self.classes[(scores[:, 0] > 0).astype(int)]
            return self.classes[scores.argmax(axis=1)]

    return NbLr()


def _systems(kinds: list[str]) -> dict[str, tuple]:
    """name -> (vectoriser factory, model factory(C, seed))."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler
    from sklearn.svm import LinearSVC

    def identity(tokens):
        return tokens

    def logistic(c: float, seed: int):  # liblinear is binary only: one-vs-rest for more labels
        return OneVsRestClassifier(LogisticRegression(C=c, solver="liblinear", random_state=seed))

    if set(kinds) == {"list"}:
        return {
            "tfidf-lr": (
                lambda: TfidfVectorizer(analyzer=identity, sublinear_tf=True),
                logistic,
            ),
            "nb-lr": (lambda: CountVectorizer(analyzer=identity, binary=True), _nb_lr),
        }
    table = lambda: make_pipeline(DictVectorizer(), MaxAbsScaler())  # noqa: E731
    return {
        "onehot-lr": (table, logistic),
        "linear-svm": (table, lambda c, s: LinearSVC(C=c, max_iter=5000, random_state=s)),
    }


def _classical(split: Split, seed: int) -> dict[str, float]:
    kinds = _kinds(split.meta)
    train = _records(split.meta.with_name(f"{split.name}.data.json"))
    test = _records(split.test)
    featurise = _text_features if set(kinds) == {"list"} else _table_features
    x_train = [featurise(v, kinds) for v, _ in train]
    x_test = [featurise(v, kinds) for v, _ in test]
    y_train = np.array([str(t) for _, t in train])
    y_test = np.array([str(t) for _, t in test])
    cut = int(len(train) * 0.9)
    scores = {}
    for name, (vectoriser, model) in _systems(kinds).items():
        best_c, best = C_GRID[0], -1.0
        for c in C_GRID:  # C chosen on held-out data, as lfengine chooses its epoch
            vec = vectoriser()
            fitted = model(c, seed).fit(vec.fit_transform(x_train[:cut]), y_train[:cut])
            accuracy = float(np.mean(fitted.predict(vec.transform(x_train[cut:])) == y_train[cut:]))
            if accuracy > best:
                best_c, best = c, accuracy
        vec = vectoriser()
        fitted = model(best_c, seed).fit(vec.fit_transform(x_train), y_train)
        scores[name] = float(np.mean(fitted.predict(vec.transform(x_test)) == y_test))
    return scores


# --- lfengine ------------------------------------------------------------------------------------


def _lfengine_score(split: Split, seed: int, extra: list[str], work: Path, tag: str) -> float | str:
    model_dir = work / f"{split.name}-{tag}-{seed}"
    proc = _lfengine(train_arguments(split.meta, model_dir, seed) + extra)
    if proc.returncode != 0:
        return proc.stderr[-2000:]
    proc = _lfengine(["evaluate", str(model_dir), str(split.test), "--json"])
    if proc.returncode != 0:
        return proc.stderr[-2000:]
    return float(json.loads(proc.stdout)["accuracy"])


def rows(seeds: list[int], quick: bool, jobs: int = 2, only: list[str] | None = None) -> list[dict]:
    """One row per (data set, system, seed); ``jobs``: lfengine runs in parallel; ``only``: these
    data sets (None: all). lfengine failures raise RuntimeError."""
    names = [n for n in data_names(quick) if only is None or n in only]
    configs = {"lfengine": ["--set", "max_epochs=2"] if quick else [], **VARIANTS}
    out: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(jobs) as pool:
        work = Path(tmp)
        splits = {name: _prepare(name, work) for name in names}
        for name in names:  # first, so that a failing baseline stops the bench before lfengine runs
            split = splits[name]
            base = {"data": name, "task": "classification", "train_size": split.n_train, "metric": "accuracy"}
            for seed in seeds:
                for system, score in _classical(split, seed).items():
                    out.append({**base, "system": system, "seed": seed, "score": score})
        futures = {
            (name, system, seed): pool.submit(_lfengine_score, splits[name], seed, extra, work, system)
            for name in names
            for system, extra in configs.items()
            for seed in seeds
        }
        for (name, system, seed), future in futures.items():
            score = future.result()
            if isinstance(score, str):
                raise RuntimeError(f"lfengine ({system}) failed on {name}, seed {seed}:\n{score}")
            base = {"data": name, "task": "classification", "train_size": splits[name].n_train}
            out.append({**base, "metric": "accuracy", "system": system, "seed": seed, "score": score})
    return out
