"""The reference files of shared/lfdata against the oracle numbers of lf-format.md §12."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lfengine.data.codec import Codec, build_codec
from lfengine.data.encoding import Encoded
from lfengine.data.meta import FeatureSpec, read_meta
from lfengine.data.reader import encode_instances, read_data
from lfengine.data.vocab import OOV_INDEX, PAD_INDEX

POS_LABELS = [
    "NOUN", "VERB", "PUNCT", "ADP", "PRON", "DET", "PROPN", "ADJ", "AUX",
    "ADV", "CCONJ", "PART", "SCONJ", "NUM", "X", "SYM", "INTJ",
]  # fmt: skip
POS_META_COUNTS = [2472, 1679, 1647, 1358, 1314, 1215, 1071, 959, 895, 746, 467, 413, 303, 273, 60, 30, 29]


@dataclass
class Loaded:
    spec: FeatureSpec
    codec: Codec
    matrices: dict[str, np.ndarray]
    data: Encoded
    lines: int


_cache: dict[str, Loaded] = {}


@pytest.fixture(scope="module")
def load(lfdata: Path):
    def get(name: str) -> Loaded:
        if name not in _cache:
            spec = read_meta(lfdata / f"{name}.meta.json")
            codec, matrices = build_codec(spec, embs=None, maxlens=None, seed=1)
            result = read_data(codec, spec.data_path(), labeled=True, skip_bad_lines=False)
            assert result.skipped == 0
            _cache[name] = Loaded(spec, codec, matrices, result.data, result.lines)
        return _cache[name]

    return get


def index_sum(data: Encoded) -> int:
    return int(data.nominal.sum(dtype=np.int64)) + sum(int(r.values.sum(dtype=np.int64)) for r in data.lists)


def check_vocab(loaded: Loaded, emb_id: str, size: int, dims: int, head: list[str], digest: str) -> None:
    vocab = loaded.codec.vocabs[emb_id]
    assert len(vocab) == size
    assert loaded.codec.embeddings[emb_id].dims == dims
    assert vocab.itos[: len(head)] == head
    assert vocab.digest() == digest
    assert loaded.matrices[emb_id].shape == (size, dims)
    assert not loaded.matrices[emb_id][PAD_INDEX].any()


def label_counts(loaded: Loaded) -> dict[str, int]:
    counts = np.bincount(loaded.data.targets, minlength=len(loaded.codec.labels))
    return dict(zip(loaded.codec.labels, counts.tolist()))


def sequence_rows(loaded: Loaded, i: int) -> slice:
    offsets = loaded.data.seq_offsets
    return slice(int(offsets[i]), int(offsets[i + 1]))


# --- §12.1 class-ionosphere ---------------------------------------------------------------------


def decoded_numeric(loaded: Loaded) -> np.ndarray:
    """Undo the codec's z-score to get the raw file values back (float64)."""
    mean = np.array([c.mean for c in loaded.codec.numeric])
    std = np.array([c.std for c in loaded.codec.numeric])
    return loaded.data.numeric.astype(np.float64) * std + mean


def test_ionosphere_layout_and_labels(load):
    lo = load("class-ionosphere")
    assert (lo.lines, lo.spec.lines_written, lo.spec.is_sequence) == (351, 351, False)
    assert len(lo.spec.attributes) == 34 and lo.spec.num_features == 34
    assert [c.name for c in lo.spec.columns] == [f"\u2506a{i:02d}\u256cA" for i in range(1, 35)]
    assert {(c.code, c.datatype) for c in lo.spec.columns} == {("A", "numeric")}
    assert lo.codec.vocabs == {} and lo.codec.task == "classification"
    assert lo.codec.labels == ["g", "b"]
    assert list(lo.spec.target.string_counts) == ["b", "g"]  # meta key order is not index order
    assert label_counts(lo) == {"g": 225, "b": 126}
    assert int(lo.data.targets.sum()) == 126
    assert lo.data.targets[:2].tolist() == [0, 1] and lo.data.targets[-1] == 1


def test_ionosphere_values(load, lfdata):
    lo = load("class-ionosphere")
    raw = decoded_numeric(lo)
    in_file = np.array([json.loads(line)[0] for line in open(lfdata / "class-ionosphere.data.json")])
    np.testing.assert_allclose(raw, in_file, atol=1e-6)
    assert raw.shape == (351, 34)
    assert raw.sum() == pytest.approx(2956.01597, abs=1e-4)  # float32 storage; file sum below
    assert in_file.sum() == pytest.approx(2956.01597, abs=1e-6)
    assert raw.min() >= -1 - 1e-6 and raw.max() <= 1 + 1e-6
    assert set(np.round(raw[:, 0], 6)) == {0.0, 1.0}
    assert not lo.data.numeric[:, 1].any()  # a02 is constant 0 and stays 0
    np.testing.assert_allclose(raw[0, :5], [1.0, 0.0, 0.92308, 0.15451, 0.86399], atol=1e-6)
    np.testing.assert_allclose(raw[0, -2:], [-0.56231, 0.35095], atol=1e-6)
    np.testing.assert_allclose(raw[1, :6], [0.0, 0.0, 1.0, 1.0, 1.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(raw[-1, :6], [1.0, 0.0, -1.0, 1.0, -1.0, 0.15244], atol=1e-6)


def test_ionosphere_column_stats_and_zscore(load):
    lo = load("class-ionosphere")
    stats = lo.spec.stats["\u2506a04\u256cA"]
    assert stats.mean == 0.044371880341880374 and stats.variance == 0.19486466487188278
    assert (stats.minimum, stats.maximum) == (-1.0, 1.0)
    vector = [0.0] * 34
    vector[3] = 0.5
    vector[1] = 0.5  # the constant column: variance 0, value passes unchanged
    encoded = encode_instances(lo.codec, [vector])
    assert encoded.numeric[0, 3] == pytest.approx(1.0321527447394934, rel=1e-6)
    assert encoded.numeric[0, 1] == 0.5


# --- §12.2 class-ngram-sp1 ----------------------------------------------------------------------


def test_ngram_layout_and_vocabulary(load):
    lo = load("class-ngram-sp1")
    assert (lo.lines, lo.spec.lines_written, lo.spec.is_sequence) == (1000, 1000, False)
    (col,) = lo.spec.columns
    assert (col.name, col.code, col.datatype) == ("Token\u2506string\u256cN1", "N", "nominal")
    attr = lo.spec.attributes[0]
    assert (attr.emb_id, attr.emb_train, attr.emb_dims, attr.emb_file) == ("token", "yes", 0, "")
    assert attr.listsep is None
    assert (attr.ngram, attr.emb_minfreq) == (1, 1)
    head = ["", "<<oov>>", ".", "the", ",", "a", "and", "of", "to", "is", "'s", "it", "that", "in", "as"]
    check_vocab(lo, "token", 19978, 120, head, "739bbac8d2e9dfe7")
    assert lo.codec.vocabs["token"].itos[-3:] == ["últimos", "única", "único"]
    stats = lo.spec.stats[col.name]
    assert (sum(stats.string_counts.values()), stats.n) == (231746, 10662)


def test_ngram_records(load):
    lo = load("class-ngram-sp1")
    assert lo.codec.labels == ["neg", "pos"]
    assert label_counts(lo) == {"neg": 489, "pos": 511}
    (tokens,) = lo.data.lists
    lengths = np.diff(tokens.offsets)
    assert (lengths.min(), lengths.max(), lengths.sum()) == (2, 50, 21571)
    assert not np.isin(tokens.values, [PAD_INDEX, OOV_INDEX]).any()  # no "" and no OOV

    def row(i: int) -> list[int]:
        return tokens.values[tokens.offsets[i] : tokens.offsets[i + 1]].tolist()

    assert row(0) == [3543, 9, 5, 629, 22, 2] and lo.data.targets[0] == 1
    assert row(1) == [6694, 17, 6469, 544, 6, 168, 51, 59, 237, 2] and lo.data.targets[1] == 0
    assert row(999) == [11, 88, 242, 4, 776, 6, 16709, 1026, 2] and lo.data.targets[999] == 1
    assert index_sum(lo.data) == 31_928_620
    assert int(lo.data.targets.sum()) == 511


# --- §12.3 class-window-pos1 --------------------------------------------------------------------

LABEL_ITOS = ["", "NOUN", "VERB", "ADP", "PRON", "DET", "PROPN", "ADJ", "AUX", "PUNCT", "ADV", "CCONJ",
              "PART", "SCONJ", "NUM", "X", "INTJ", "SYM"]  # fmt: skip
WINDOW_VOCABS = {  # emb_id: size, dims, head, itos digest
    "token": (3998, 88, ["", "<<oov>>", "the", ",", "to", "and", ".", "a", "of", "in", "I", "that", "is",
                         "you", "for"], "281ec103056600d6"),
    "label": (18, 17, LABEL_ITOS, "fd83214487c21304"),
    "shape": (96, 10, ["", "<<oov>>", "a", "Aa", ",", "A", ".", "9", "-", "'a", '"', "(", ")", "a'a", ":"],
              "9f584027faaa6fc8"),
    "suf": (1083, 10, ["", "<<oov>>", "ed", "ng", "ing", "er", "at", "es", "ly", "on", "re", "ve", "st", "nt",
                       "ce"], "7ea2bc39763a7495"),
}  # fmt: skip


def test_window_layout(load):
    lo = load("class-window-pos1")
    assert (lo.lines, lo.spec.lines_written, lo.spec.is_sequence) == (1000, 1000, False)
    assert len(lo.spec.attributes) == 5 and lo.spec.num_features == 26
    assert [c.attribute for c in lo.spec.columns] == [0] * 6 + [1] * 2 + [2] * 6 + [3] * 6 + [4] * 6
    assert [lo.spec.columns[i].name for i in (0, 5, 6, 7)] == [
        "Token\u2506string\u256cL-3",
        "Token\u2506string\u256cL2",
        "Token\u2506gate.LF.target\u256cL-2",
        "Token\u2506gate.LF.target\u256cL-1",
    ]
    assert [c.offset for c in lo.spec.columns[:8]] == [-3, -2, -1, 0, 1, 2, -2, -1]
    settings = [(a.emb_id, a.emb_train, a.emb_dims) for a in lo.spec.attributes]
    expected = [("token", "yes", 0), ("label", "onehot", 0), ("shape", "yes", 10), ("suf", "yes", 10)]
    assert settings == expected + [("suf", "yes", 10)]
    emb_ids = [c.emb_id for c in lo.codec.nominal]
    assert emb_ids == ["token"] * 6 + ["label"] * 2 + ["shape"] * 6 + ["suf"] * 12


def test_window_vocabularies(load):
    lo = load("class-window-pos1")
    for emb_id, (size, dims, head, digest) in WINDOW_VOCABS.items():
        check_vocab(lo, emb_id, size, dims, head, digest)
    assert lo.codec.vocabs["label"].itos == LABEL_ITOS  # complete: no OOV
    assert lo.codec.embeddings["label"].mode == "onehot"
    np.testing.assert_array_equal(lo.matrices["label"][1:], np.eye(17, dtype=np.float32))

    def summed(attrs: set[int]) -> dict[str, int]:
        total: dict[str, int] = {}
        for col in lo.spec.columns:
            if col.attribute in attrs:
                for s, c in lo.spec.stats[col.name].string_counts.items():
                    total[s] = total.get(s, 0) + c
        return total

    token = summed({0})
    assert (sum(token.values()), token[""]) == (89586, 7514)
    assert summed({1})[""] == 2526 and summed({3, 4})[""] == 109555
    label = summed({1})
    assert [label[s] for s in ("NOUN", "VERB", "ADP", "PRON")] == [4520, 3275, 2709, 2590]


def test_window_records(load):
    lo = load("class-window-pos1")
    assert lo.codec.labels == POS_LABELS
    meta_counts = lo.spec.target.string_counts
    assert [meta_counts[label] for label in POS_LABELS] == POS_META_COUNTS
    data_counts = {"NOUN": 178, "PUNCT": 113, "VERB": 110, "PRON": 93, "ADP": 93, "DET": 74, "PROPN": 72,
                   "AUX": 68, "ADJ": 55, "ADV": 54, "CCONJ": 32, "SCONJ": 23, "PART": 17, "NUM": 15,
                   "SYM": 1, "X": 1, "INTJ": 1}  # fmt: skip
    assert label_counts(lo) == data_counts
    nominal = lo.data.nominal
    empty = (nominal == PAD_INDEX).sum(axis=0)
    assert empty.sum() == 8472
    assert (empty[0:6].sum(), empty[6:8].sum(), empty[8:14].sum(), empty[14:].sum()) == (487, 156, 487, 7342)
    not_onehot = np.r_[0:6, 8:26]
    assert not (nominal[:, not_onehot] == OOV_INDEX).any()
    distinct = [len(np.unique(nominal[:, j])) for j in range(26)]
    assert distinct == [446, 487, 551, 548, 506, 500, 17, 18, 26, 25, 33, 28, 27, 32,
                        110, 113, 132, 119, 110, 115, 156, 174, 195, 191, 170, 173]  # fmt: skip
    assert nominal[0].tolist() == [8, 1917, 7, 1742, 1743, 302, 2, 5, 2, 2, 2, 3, 3, 2,
                                   0, 3, 0, 13, 3, 56, 0, 4, 0, 31, 4, 116]  # fmt: skip
    assert nominal[1].tolist() == [1210, 1495, 9, 796, 23, 3075, 6, 3, 3, 3, 2, 3, 2, 2,
                                   20, 54, 0, 86, 0, 2, 0, 391, 0, 300, 0, 77]  # fmt: skip
    assert nominal[-1].tolist() == [0, 0, 0, 678, 1156, 8, 0, 0, 0, 0, 0, 3, 2, 2,
                                    0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 18, 0]  # fmt: skip
    assert lo.data.targets[:2].tolist() == [0, 0] and lo.data.targets[-1] == 5
    assert index_sum(lo.data) == 4_068_613
    assert int(lo.data.targets.sum()) == 4227


# --- §12.4 seq-pos1 -----------------------------------------------------------------------------


def test_seq_pos1_layout_and_lengths(load):
    lo = load("seq-pos1")
    assert (lo.lines, lo.spec.lines_written, lo.spec.is_sequence) == (853, 853, True)
    assert lo.codec.task == "sequence"
    assert len(lo.spec.attributes) == 3 and lo.spec.num_features == 18
    assert [c.emb_id for c in lo.codec.nominal] == ["token"] * 6 + ["suf"] * 12
    lengths = lo.data.lengths()
    assert (len(lengths), lengths.sum(), lengths.min(), lengths.max()) == (853, 14931, 1, 76)
    assert lengths.mean() == pytest.approx(17.50410316529894, rel=1e-12)
    assert lengths.var(ddof=1) == pytest.approx(163.1399479330066, rel=1e-12)
    assert lo.spec.seq_lengths["variance"] == pytest.approx(163.1399479330066, rel=1e-12)
    assert lo.spec.seq_lengths["mean"] == pytest.approx(17.50410316529894, rel=1e-12)
    check_vocab(lo, "token", 3998, 88, WINDOW_VOCABS["token"][2], "281ec103056600d6")
    check_vocab(lo, "suf", 1083, 10, WINDOW_VOCABS["suf"][2], "7ea2bc39763a7495")


def test_seq_pos1_records(load):
    lo = load("seq-pos1")
    assert lo.codec.labels == POS_LABELS
    counts = label_counts(lo)
    assert [counts[label] for label in POS_LABELS] == POS_META_COUNTS
    nominal, targets = lo.data.nominal, lo.data.targets
    empty = nominal == PAD_INDEX
    assert (empty.sum(), empty[:, :6].sum(), empty[:, 6:].sum()) == (117069, 7514, 109555)
    assert not (nominal == OOV_INDEX).any()
    first, second, last = sequence_rows(lo, 0), sequence_rows(lo, 1), sequence_rows(lo, 852)
    assert len(nominal[first]) == 3  # "awful" three times: element 0 sees all three to its right
    assert nominal[first][0].tolist() == [0, 0, 0, 1330, 1330, 1330, 0, 0, 0,
                                          186, 186, 186, 0, 0, 0, 208, 208, 208]  # fmt: skip
    assert targets[first].tolist() == [7, 7, 7]
    assert len(nominal[second]) == 8 and len(nominal[last]) == 20
    assert nominal[second][0].tolist() == [0, 0, 0, 1239, 339, 48, 0, 0, 0, 62, 62, 37, 0, 0, 0, 0, 0, 0]
    assert targets[second].tolist() == [1, 9, 3, 6, 9, 6, 6, 2]
    assert nominal[last][0].tolist() == [0, 0, 0, 163, 29, 378, 0, 0, 0, 22, 0, 9, 0, 0, 0, 0, 0, 18]
    assert targets[last].tolist() == [6, 11, 0, 3, 5, 0, 8, 1, 0, 3, 0, 10, 0, 0, 3, 0, 5, 7, 0, 2]
    assert index_sum(lo.data) == 60_695_539
    assert int(targets.sum()) == 65_543


# --- §12.5 seq-pos2 -----------------------------------------------------------------------------


def test_seq_pos2(load):
    lo = load("seq-pos2")
    assert (lo.lines, lo.spec.lines_written, lo.spec.is_sequence) == (100, 100, True)
    lengths = lo.data.lengths()
    assert (lengths.sum(), lengths.min(), lengths.max()) == (2356, 2, 87)
    assert lengths.mean() == pytest.approx(23.56) and lengths.var(ddof=1) == pytest.approx(192.2286868686868)
    assert lo.spec.seq_lengths["variance"] == pytest.approx(192.2286868686868)
    (col,) = lo.spec.columns
    attr = lo.spec.attributes[0]
    assert (col.name, col.code) == ("Token\u2506string_lc\u256cA", "A")
    assert (attr.emb_id, attr.emb_train, attr.emb_dims) == ("", "", 0)
    assert lo.codec.embeddings[""].mode == "yes"  # "" without a file means yes
    head = ["", "<<oov>>", "the", ".", ",", "in", "a", "of", "to", "and", "(", ")", "said", '"', "on", "it",
            "'s", "by", "they", "copper"]  # fmt: skip
    check_vocab(lo, "", 915, 62, head, "38ec540472dc246b")
    assert lo.codec.vocabs[""].itos[-3:] == ["yard", "york", "zighayer"]
    assert sum(c == 1 for c in lo.spec.stats[col.name].string_counts.values()) == 593
    labels = ["O", "LOC|B", "ORG|B", "PER|B", "MISC|B", "ORG|I", "PER|I", "MISC|I", "LOC|I"]
    assert lo.codec.labels == labels
    assert label_counts(lo) == dict(zip(labels, [2026, 70, 67, 51, 40, 39, 31, 17, 15]))
    nominal, targets = lo.data.nominal[:, 0], lo.data.targets
    first, second, last = sequence_rows(lo, 0), sequence_rows(lo, 1), sequence_rows(lo, 99)
    assert nominal[first].tolist() == [590, 738, 28, 153, 519, 348, 313, 26, 165, 107, 3]
    assert targets[first].tolist() == [0, 0, 0, 3, 0, 0, 0, 0, 0, 3, 0]
    assert nominal[second][:4].tolist() == [913, 4, 65, 176] and len(nominal[second]) == 36
    assert targets[second][:8].tolist() == [1, 0, 1, 0, 0, 3, 6, 0]
    assert targets[second][-5:].tolist() == [4, 7, 0, 0, 0]
    assert nominal[last].tolist() == [57, 198, 259, 366] and targets[last].tolist() == [0, 1, 0, 0]
    assert index_sum(lo.data) == 502_824
    assert int(targets.sum()) == 1137
