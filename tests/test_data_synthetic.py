"""Synthetic LF corpora: exact format, statistics that match a recount, seeded, learnable."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from lfengine.data.codec import build_codec
from lfengine.data.meta import read_meta
from lfengine.data.reader import read_data
from lfengine.data.synthetic import (
    word_shape,
    write_classification_corpus,
    write_sequence_corpus,
    write_window_corpus,
)

GENERATORS = {
    "sequence": (write_sequence_corpus, 150),
    "classification": (write_classification_corpus, 300),
    "window": (write_window_corpus, 1500),
}
COMMON_KEYS = {"annType", "feature", "name", "featureId", "missingValueValue", "datatype", "featureCode",
               "code", "featureName4Value", "emb_file", "emb_id", "emb_dims", "emb_train", "emb_minfreq",
               "listsep"}  # fmt: skip
SCALAR_KEYS = COMMON_KEYS | {"codeas", "missingValueTreatment", "alphabet", "withinType"}
KEYS = {
    "A": SCALAR_KEYS,
    "L": SCALAR_KEYS | {"from", "to"},
    "N": COMMON_KEYS | {"number", "maxlen", "shorten"},
}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synthetic")
    return {kind: gen(root / kind, n, seed=11) for kind, (gen, n) in GENERATORS.items()}


def records_of(meta_path: Path) -> list:
    data_path = meta_path.with_name(meta_path.name.replace(".meta.json", ".data.json"))
    raw = data_path.read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def recount(values: list) -> dict:
    """featureStats recomputed from the data, independently of the writer."""
    if isinstance(values[0], (str, list)):
        counts = Counter()
        for v in values:
            counts.update(v if isinstance(v, list) else [v])
        return {"isString": True, "stringCounts": dict(counts), "n": len(values)}
    x = np.array(values, dtype=np.float64)
    return {"isString": False, "stringCounts": {}, "n": len(x), "min": x.min(), "max": x.max(),
            "mean": x.mean(), "variance": x.var(ddof=1)}  # fmt: skip


@pytest.mark.parametrize("kind", list(GENERATORS))
def test_meta_matches_a_recount_of_the_data(corpora, kind):
    meta_path = corpora[kind]
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    records = records_of(meta_path)
    assert meta["linesWritten"] == len(records) == GENERATORS[kind][1]
    assert meta["featureNames"] == [f["name"] for f in meta["features"]]
    assert meta["featureInfo"]["globalScalingMethod"] == "NONE"
    assert Path(meta["dataFile"]).name == meta_path.name.replace(".meta.json", ".data.json")
    for i, attr in enumerate(meta["featureInfo"]["attributes"]):
        assert set(attr) == KEYS[attr["featureCode"]] and attr["featureId"] == i
    vectors = [v for r in records for v in r[0]] if meta["isSequence"] else [r[0] for r in records]
    targets = [t for r in records for t in r[1]] if meta["isSequence"] else [r[1] for r in records]
    for j, feature in enumerate(meta["features"]):
        expected = recount([v[j] for v in vectors])
        stats = meta["featureStats"][feature["name"]]
        for key, value in expected.items():
            assert stats[key] == pytest.approx(value, rel=1e-9), (feature["name"], key)
    assert meta["targetStats"]["stringCounts"] == dict(Counter(targets))
    assert meta["targetStats"]["n"] == len(targets)
    if meta["isSequence"]:
        lengths = np.array([len(r[0]) for r in records], dtype=np.float64)
        assert [meta[f"sequLengths.{k}"] for k in ("min", "max")] == [lengths.min(), lengths.max()]
        assert meta["sequLengths.mean"] == pytest.approx(lengths.mean())
        assert meta["sequLengths.variance"] == pytest.approx(lengths.var(ddof=1))
        assert all(len(r[0]) == len(r[1]) for r in records)
    else:
        assert not any(k.startswith("sequLengths.") for k in meta)


@pytest.mark.parametrize("kind", list(GENERATORS))
def test_corpora_load_without_oov(corpora, kind):
    spec = read_meta(corpora[kind])
    codec, _ = build_codec(spec)
    result = read_data(codec, spec.data_path())
    assert result.lines == spec.lines_written and result.skipped == 0
    assert not any((result.data.nominal[:, j] == 1).any() for j, c in enumerate(codec.nominal)
                   if codec.embeddings[c.emb_id].mode != "onehot")  # fmt: skip
    assert all(not (r.values == 1).any() for r in result.data.lists)


def test_shapes_of_the_corpora(corpora):
    seq = read_meta(corpora["sequence"])
    assert seq.is_sequence
    assert [(c.code, c.offset) for c in seq.columns] == [("A", None), ("L", -1), ("L", 0), ("L", 1)]
    assert set(seq.target.string_counts) == {"O", "PER|B", "PER|I", "LOC|B", "ORG|B", "ORG|I"}
    cls = read_meta(corpora["classification"])
    assert [(c.code, c.datatype) for c in cls.columns] == [("N", "nominal"), ("A", "numeric"), ("A", "bool")]
    win = read_meta(corpora["window"])
    assert win.num_features == 26 and {c.datatype for c in win.columns} == {"nominal"}
    settings = [(a.code, a.window, a.emb_id, a.emb_train, a.emb_dims) for a in win.attributes]
    assert settings == [
        ("L", (-3, 2), "token", "yes", 0),
        ("L", (-2, -1), "label", "onehot", 0),
        ("L", (-3, 2), "shape", "yes", 10),
        ("L", (-3, 2), "suf", "yes", 10),
        ("L", (-3, 2), "suf", "yes", 10),
    ]


def test_seeded(tmp_path):
    a = write_window_corpus(tmp_path / "a", 300, seed=3)
    b = write_window_corpus(tmp_path / "b", 300, seed=3)
    c = write_window_corpus(tmp_path / "c", 300, seed=4)
    data = [p.with_name("class-window-synth.data.json").read_bytes() for p in (a, b, c)]
    assert data[0] == data[1] and data[0] != data[2]
    metas = [json.loads(p.read_text(encoding="utf-8")) for p in (a, b)]
    del metas[0]["dataFile"], metas[1]["dataFile"]
    assert metas[0] == metas[1]


def majority_accuracy(pairs: list[tuple[str, str]]) -> float:
    """Accuracy of predicting each key's most frequent label: how far the key determines it."""
    by_key: dict[str, Counter] = defaultdict(Counter)
    for key, label in pairs:
        by_key[key][label] += 1
    return sum(c.most_common(1)[0][1] for c in by_key.values()) / len(pairs)


def test_labels_follow_from_the_features(corpora):
    window = records_of(corpora["window"])
    assert majority_accuracy([(v[3], t) for v, t in window]) == 1.0  # the token at L0 has one tag
    sequence = records_of(corpora["sequence"])
    pairs = [(el[0], t) for vectors, labels in sequence for el, t in zip(vectors, labels)]
    assert majority_accuracy(pairs) > 0.97
    texts = records_of(corpora["classification"])
    train, test = texts[:200], texts[200:]
    word_topic: dict[str, Counter] = defaultdict(Counter)
    for (tokens, _, _), topic in train:
        for w in tokens:
            word_topic[w][topic] += 1
    correct = 0
    for (tokens, _, _), topic in test:
        votes = Counter()
        for w in tokens:
            votes.update(word_topic.get(w, {}))
        correct += votes.most_common(1)[0][0] == topic if votes else 0
    assert correct / len(test) > 0.9


def test_word_shape():
    words = ("Hello", "ABC", "x1", "can't", "3.14", "")
    assert [word_shape(w) for w in words] == ["Aa", "A", "a9", "a'a", "9.9", ""]
