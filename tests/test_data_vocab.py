"""Vocabularies, embeddings files and per-id settings: lf-format.md §7, §8, §10, §12.6."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from lfengine.data.codec import build_codec
from lfengine.data.embeddings import initial_matrix, read_embeddings
from lfengine.data.meta import read_meta
from lfengine.data.overrides import EmbOverride, MaxlenOverride, parse_embs, parse_maxlens, shorten_list
from lfengine.data.reader import read_data
from lfengine.data.synthetic import LfAttribute
from lfengine.data.vocab import Vocabulary, dims_heuristic
from lfengine.errors import EmbeddingsError, OptionError

MINI_WORDS = ["was", "as", "las", "mas", "please", "has", "say", "always", "mais", "because", "thanks",
              "esta", "last", "ass", "sama", "pas", "said", "bisa", "same", "days"]  # fmt: skip
MINI_COUNTS = {"was": 20, "as": 10, "las": 12, "mas": 1, "please": 33, "say": 40, "sama": 1, "always": 21,
               "mais": 2, "because": 33, "esta": 5, "last": 11, "thanks": 13, "ass": 13, "has": 55,
               "pas": 1, "said": 25, "bisa": 2, "same": 13, "days": 21}  # fmt: skip


def nominal_corpus(lf_pair, counts: dict[str, int], **emb) -> Path:
    """One A nominal column whose values occur exactly ``counts`` times (the stats match)."""
    records = [[[word], "x"] for word, count in counts.items() for _ in range(count)]
    return lf_pair([LfAttribute("A", "word", ann_type="", emb_id="w", **emb)], records)


def codec_for(meta: Path, **kw):
    return build_codec(read_meta(meta), **kw)


# --- §12.6 the embeddings file ------------------------------------------------------------------


def test_reference_embeddings_file(lfdata):
    emb = read_embeddings(lfdata / "emb-mini20-25.txt")
    assert emb.words == MINI_WORDS and emb.dims == 25 and emb.vectors.shape == (20, 25) and emb.skipped == 0
    np.testing.assert_allclose(emb.vectors[0, :4], [-0.16063, 0.021235, 0.95695, -1.0642], rtol=1e-6)
    np.testing.assert_allclose(emb.vectors[-1, :4], [-0.16311, 0.71018, 0.79658, -0.65277], rtol=1e-6)
    text = (lfdata / "emb-mini20-25.txt").read_bytes()
    assert gzip.decompress((lfdata / "emb-mini20-25.txt.gz").read_bytes()) == text
    assert text.endswith(b"\n") and b"\t" not in text
    twin = read_embeddings(lfdata / "emb-mini20-25.txt.gz")
    assert twin.words == emb.words and np.array_equal(twin.vectors, emb.vectors)


def test_embeddings_parsing_is_lenient_about_whitespace_and_strict_about_fields(tmp_path):
    path = tmp_path / "small.vec"
    path.write_text(
        "3 2\nalpha 1 2\nbeta\t3   4\ngamma 5\ndelta 6 7 8\nepsilon x 1\nzeta 9 10\n", encoding="utf-8"
    )
    emb = read_embeddings(path)
    assert emb.words == ["alpha", "beta", "zeta"] and emb.skipped == 3
    np.testing.assert_array_equal(emb.vectors, [[1, 2], [3, 4], [9, 10]])


# --- §8.3 vocabularies with an embeddings file --------------------------------------------------


def test_vocabulary_with_the_reference_file(lf_pair, lfdata):
    meta = nominal_corpus(lf_pair, MINI_COUNTS, emb_file=str(lfdata / "emb-mini20-25.txt"), emb_train="yes")
    codec, matrices = codec_for(meta)
    itos = codec.vocabs["w"].itos
    assert itos == ["", "<<oov>>", "has", "say", "because", "please", "said", "always", "days", "was", "ass",
                    "same", "thanks", "las", "last", "as", "esta", "bisa", "mais", "mas", "pas",
                    "sama"]  # fmt: skip
    matrix = matrices["w"]
    assert matrix.shape == (22, 25) and codec.embeddings["w"].dims == 25
    assert not matrix[0].any()
    np.testing.assert_allclose(matrix[itos.index("was"), :3], [-0.16063, 0.021235, 0.95695], rtol=1e-6)
    assert codec.embeddings["w"].sources["dims"] == "file" and codec.embeddings["w"].file.endswith(".txt")
    gz_meta = nominal_corpus(
        lf_pair, MINI_COUNTS, emb_file=str(lfdata / "emb-mini20-25.txt.gz"), emb_train="yes"
    )
    gz_codec, gz_matrices = codec_for(gz_meta)
    assert gz_codec.vocabs["w"].itos == itos and np.array_equal(gz_matrices["w"], matrix)


def test_unset_mode_with_a_file_means_no_and_keeps_only_words_with_vectors(lf_pair, lfdata):
    counts = {"was": 5, "as": 3, "zzz": 7, "yyy": 1}
    meta = nominal_corpus(lf_pair, counts, emb_file=str(lfdata / "emb-mini20-25.txt"))
    codec, _ = codec_for(meta)
    assert codec.vocabs["w"].itos == ["", "<<oov>>", "was", "as"]
    assert (codec.embeddings["w"].mode, codec.embeddings["w"].sources["mode"]) == ("no", "default")
    explicit, _ = codec_for(
        nominal_corpus(lf_pair, counts, emb_file=str(lfdata / "emb-mini20-25.txt"), emb_train="no")
    )
    assert explicit.vocabs["w"].itos == ["", "<<oov>>", "was", "as"]
    spec = read_meta(meta)
    data = read_data(codec, spec.data_path()).data
    assert dict(zip(*np.unique(data.nominal[:, 0], return_counts=True))) == {
        1: 8,
        2: 5,
        3: 3,
    }  # zzz, yyy -> OOV


def test_mapping_mode_appends_every_file_word_in_file_order(lf_pair, lfdata):
    counts = {"was": 5, "zzz": 7, "yyy": 1}
    meta = nominal_corpus(lf_pair, counts, emb_file=str(lfdata / "emb-mini20-25.txt"), emb_train="mapping")
    codec, matrices = codec_for(meta)
    itos = codec.vocabs["w"].itos
    assert itos == ["", "<<oov>>", "zzz", "was", "yyy"] + [w for w in MINI_WORDS if w != "was"]
    emb = read_embeddings(lfdata / "emb-mini20-25.txt")
    for i, word in enumerate(itos[5:], 5):
        np.testing.assert_array_equal(matrices["w"][i], emb.vectors[MINI_WORDS.index(word)])


def test_dims_that_conflict_with_the_file_are_an_error(lf_pair, lfdata):
    meta = nominal_corpus(lf_pair, {"was": 2}, emb_file=str(lfdata / "emb-mini20-25.txt"), emb_dims=10)
    with pytest.raises(EmbeddingsError) as info:
        codec_for(meta)
    assert info.value.file.endswith("emb-mini20-25.txt")
    assert "10" in info.value.message and "25" in info.value.message


def test_relative_embeddings_path_resolves_against_the_meta_directory(lf_pair, tmp_path, monkeypatch):
    (tmp_path / "vectors.txt").write_text("alpha 1 2 3\nbeta 4 5 6\n", encoding="utf-8")
    meta = nominal_corpus(
        lf_pair, {"alpha": 3, "beta": 2, "gamma": 1}, emb_file="vectors.txt", emb_train="yes"
    )
    monkeypatch.chdir(Path(__file__).parent)  # not the meta directory
    codec, matrices = codec_for(meta)
    assert codec.vocabs["w"].itos == ["", "<<oov>>", "alpha", "beta", "gamma"]
    np.testing.assert_array_equal(matrices["w"][2:4], [[1, 2, 3], [4, 5, 6]])
    assert codec.embeddings["w"].file == str(tmp_path / "vectors.txt")


def test_random_rows_follow_the_seed(lfdata):
    spec = read_meta(lfdata / "class-window-pos1.meta.json")
    _, first = build_codec(spec, seed=1)
    _, again = build_codec(spec, seed=1)
    _, other = build_codec(spec, seed=2)
    for emb_id in ("token", "shape", "suf"):
        assert np.array_equal(first[emb_id], again[emb_id])
        assert not np.array_equal(first[emb_id], other[emb_id])
        assert not first[emb_id][0].any()
    assert np.array_equal(first["label"], other["label"])  # onehot rows are not random


# --- §8.1, §8.4 ---------------------------------------------------------------------------------

WORKED = {"a": 12, "b": 13, "c": 1, "d": 2, "x": 12}


def test_worked_examples():
    assert Vocabulary.from_counts(WORKED, minfreq=2).itos == ["", "<<oov>>", "b", "a", "x", "d"]
    onehot = Vocabulary.from_counts(WORKED, onehot=True)
    assert onehot.itos == ["", "b", "a", "x", "d", "c"] and onehot.stoi["a"] == 2
    matrix = initial_matrix(onehot.itos, 5, onehot=True, pretrained=None, rng=np.random.default_rng(0))
    assert matrix[2].tolist() == [0, 1, 0, 0, 0] and not matrix[0].any()


def test_minfreq_from_the_meta_and_from_embs(lf_pair):
    meta = nominal_corpus(lf_pair, WORKED, emb_minfreq=2)
    codec, _ = codec_for(meta)
    assert codec.vocabs["w"].itos == ["", "<<oov>>", "b", "a", "x", "d"]
    plain = nominal_corpus(lf_pair, WORKED)
    codec, matrices = codec_for(plain, embs="w::onehot")
    assert codec.vocabs["w"].itos == ["", "b", "a", "x", "d", "c"] and codec.embeddings["w"].dims == 5
    assert codec.embeddings["w"].sources["mode"] == "option"
    codec, _ = codec_for(plain, embs="w:7::2")
    assert codec.vocabs["w"].itos == ["", "<<oov>>", "b", "a", "x", "d"] and codec.embeddings["w"].dims == 7


@pytest.mark.parametrize(
    "n,dims",
    [(1, 1), (2, 2), (9, 8), (10, 9), (17, 13), (18, 14), (96, 30), (100, 31), (915, 62), (1000, 63),
     (1083, 65), (3998, 88), (10_000, 106), (19_978, 120), (100_000, 158), (1_000_000, 219)],
)  # fmt: skip
def test_dims_heuristic(n, dims):
    assert dims_heuristic(n) == dims


# --- §10 shorten, --embs, --maxlens ---------------------------------------------------------------


@pytest.mark.parametrize(
    "mode,kept", [("", [0, 1, 2, 3]), ("right", [0, 1, 2, 3]), ("left", [6, 7, 8, 9]), ("both", [3, 4, 5, 6]),
                  ("middle", [0, 1, 8, 9])],
)  # fmt: skip
def test_shorten(mode, kept):
    assert shorten_list(list(range(10)), 4, mode) == kept
    assert shorten_list(list(range(3)), 4, mode) == [0, 1, 2]
    assert shorten_list(list(range(10)), 0, mode) == list(range(10))


def test_shorten_middle_with_odd_maxlen():
    assert shorten_list(list(range(10)), 3, "middle") == [0, 1, 9]


def test_parse_embs():
    assert parse_embs("token:123:yes") == {"token": EmbOverride("token", 123, "yes", None, None)}
    assert parse_embs(":17") == {"": EmbOverride("", 17, None, None, None)}
    assert parse_embs("token:50:yes:3") == {"token": EmbOverride("token", 50, "yes", 3, None)}
    assert parse_embs("::yes:2:embs/glove.txt.gz") == {
        "": EmbOverride("", None, "yes", 2, "embs/glove.txt.gz")
    }
    both = parse_embs("a:10,b::onehot")
    assert both["a"].dims == 10 and both["b"].train == "onehot"
    assert parse_embs("w::::C:/embs/x.txt")["w"].file == "C:/embs/x.txt"
    assert parse_embs(None) == {} and parse_embs("") == {}
    for bad in ("token:big", "token:10:sometimes", "token:10:yes:0", "token:-3"):
        with pytest.raises(OptionError):
            parse_embs(bad)


def test_parse_maxlens():
    assert parse_maxlens(":10:left") == [MaxlenOverride(None, 10, "left")]
    assert parse_maxlens("2:5,0:3:middle") == [MaxlenOverride(2, 5, ""), MaxlenOverride(0, 3, "middle")]
    for bad in ("1", "1:0", "1:x", "1:5:sideways", "a:5", "1:2:3:4"):
        with pytest.raises(OptionError):
            parse_maxlens(bad)


def test_maxlens_apply_per_attribute(lf_pair):
    attributes = [
        LfAttribute("N", "string", emb_id="t"),
        LfAttribute("N", "lemma", emb_id="t", maxlen=3, shorten="left"),
    ]
    words = [str(i) for i in range(10)]
    meta = lf_pair(attributes, [[[words, words], "x"]])
    spec = read_meta(meta)

    def encoded_lists(maxlens):
        codec, _ = build_codec(spec, maxlens=maxlens)
        data = read_data(codec, spec.data_path()).data
        return [[codec.vocabs["t"].itos[i] for i in r.values] for r in data.lists]

    assert encoded_lists(None) == [words, ["7", "8", "9"]]  # the meta's own maxlen/shorten
    assert encoded_lists("0:4:left") == [words[6:], ["7", "8", "9"]]  # attribute 0 only (D9)
    assert encoded_lists("1:4:middle") == [words, ["0", "1", "8", "9"]]
    assert encoded_lists(":2") == [words[:2], words[:2]]
    with pytest.raises(OptionError):
        build_codec(spec, maxlens="5:4")
    with pytest.raises(OptionError):
        build_codec(spec, embs="nosuchid:10")
