"""Pretrained vectors in GloVe text, fastText .vec and word2vec binary, plain or gzip'd, told
apart by content; truncated or malformed files are errors naming the file and where."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pytest

from lfengine.data.codec import build_codec
from lfengine.data.embeddings import read_embeddings
from lfengine.data.meta import read_meta
from lfengine.data.synthetic import LfAttribute
from lfengine.errors import EmbeddingsError

WORDS = ["the", "Straße", "a-b", "x"]
VECTORS = np.array(
    [[0.5, -1.0, 2.25], [1e-3, 3.0, -0.125], [7.0, 8.0, 9.0], [0.0, -0.0, 1.5]], dtype=np.float32
)


def _binary(words: list[str], vectors: np.ndarray, newline: bool = True) -> bytes:
    """word2vec's C tool layout (gensim writes the same): header, then word, space, float32s."""
    out = f"{len(words)} {vectors.shape[1]}\n".encode()
    for word, vector in zip(words, vectors, strict=True):
        out += word.encode("utf-8") + b" " + vector.astype("<f4").tobytes() + (b"\n" if newline else b"")
    return out


def _text(words: list[str], vectors: np.ndarray, header: bool) -> bytes:
    lines = [f"{len(words)} {vectors.shape[1]}"] if header else []
    lines += [w + " " + " ".join(repr(float(v)) for v in vec) for w, vec in zip(words, vectors, strict=True)]
    return ("\n".join(lines) + "\n").encode("utf-8")


CASES = {
    "vectors.bin": _binary(WORDS, VECTORS),
    "no-newlines.bin": _binary(WORDS, VECTORS, newline=False),
    "vectors.bin.gz": gzip.compress(_binary(WORDS, VECTORS)),
    "named-anything.dat": _binary(WORDS, VECTORS),
    "wiki.vec": _text(WORDS, VECTORS, header=True),
    "wiki.vec.gz": gzip.compress(_text(WORDS, VECTORS, header=True)),
    "glove.txt": _text(WORDS, VECTORS, header=False),
    "glove.gz": gzip.compress(_text(WORDS, VECTORS, header=False)),
}


@pytest.mark.parametrize("name", CASES)
def test_every_format_reads_the_same_vectors(tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_bytes(CASES[name])
    emb = read_embeddings(path)
    assert emb.words == WORDS and emb.skipped == 0
    np.testing.assert_array_equal(emb.vectors, VECTORS)
    wanted = read_embeddings(path, {"x", "the"})
    assert wanted.words == ["the", "x"]


def test_the_shared_glove_file_as_word2vec_binary_gives_its_vectors(tmp_path: Path, lfdata: Path):
    glove = read_embeddings(lfdata / "emb-mini20-25.txt")
    path = tmp_path / "mini.bin.gz"
    path.write_bytes(gzip.compress(_binary(glove.words, glove.vectors)))
    binary = read_embeddings(path)
    assert binary.words == glove.words and np.array_equal(binary.vectors, glove.vectors)
    assert np.array_equal(read_embeddings(lfdata / "emb-mini20-25.txt.gz").vectors, glove.vectors)


def test_embs_points_a_vocabulary_at_a_word2vec_binary_file(tmp_path: Path, lf_pair):
    path = tmp_path / "vectors.bin"
    path.write_bytes(_binary(WORDS, VECTORS))
    records = [[["the"], "x"], [["the"], "y"], [["x"], "x"], [["new"], "y"]]
    meta = lf_pair([LfAttribute("A", "word", ann_type="", emb_id="w")], records)
    codec, matrices = build_codec(read_meta(meta), embs=f"w::yes::{path}")
    itos = codec.vocabs["w"].itos
    assert codec.embeddings["w"].dims == 3 and codec.embeddings["w"].file == str(path)
    np.testing.assert_array_equal(matrices["w"][itos.index("the")], VECTORS[0])
    np.testing.assert_array_equal(matrices["w"][itos.index("x")], VECTORS[3])


def _error(path: Path) -> EmbeddingsError:
    with pytest.raises(EmbeddingsError) as info:
        read_embeddings(path)
    assert info.value.file == str(path)
    return info.value


def test_a_binary_file_cut_inside_a_vector_names_the_record_and_its_byte(tmp_path: Path):
    data = _binary(WORDS, VECTORS)
    path = tmp_path / "cut.bin"
    path.write_bytes(data[:-7])  # inside the last vector
    err = _error(path)
    start = len(data) - (len("x") + 1 + 12 + 1)
    assert "embeddings file is truncated" in err.message
    assert "record 4 of 4" in str(err) and f"byte {start}" in str(err) and "6 of 12 vector bytes" in str(err)
    path.write_bytes(data[: len("4 3\n") + 17 + 3])  # inside the second word
    assert "end of file in the word of record 2 of 4, which starts at byte 21" in str(_error(path))


def test_a_vec_file_with_fewer_lines_than_its_header_is_truncated(tmp_path: Path):
    path = tmp_path / "short.vec"
    path.write_bytes(_text(WORDS, VECTORS, header=True).replace(b"4 3", b"9 3", 1))
    err = _error(path)
    assert "embeddings file is truncated" in err.message and "4 vector lines" in str(err) and "9" in str(err)


def test_a_cut_gzip_stream_is_an_error_naming_the_last_line_read(tmp_path: Path, lfdata: Path):
    path = tmp_path / "cut.txt.gz"
    path.write_bytes((lfdata / "emb-mini20-25.txt.gz").read_bytes()[:-40])
    err = _error(path)
    assert "truncated or damaged" in err.message and "after line" in str(err)


def test_malformed_text_lines_are_skipped_with_a_warning_naming_the_first(tmp_path: Path, caplog):
    path = tmp_path / "bad.txt"
    path.write_text("a 1 2\nb 1\nc 1 x\nd 3 4\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        emb = read_embeddings(path)
    assert emb.words == ["a", "d"] and emb.skipped == 2
    assert "skipped 2 malformed entries (first: line 2: 1 numbers, not 2)" in caplog.text


def test_a_file_that_is_neither_text_nor_word2vec_binary_says_what_is_expected(tmp_path: Path):
    path = tmp_path / "vectors.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}\n\xff\xfe\x00\x01")
    message = str(_error(path))
    assert "neither UTF-8 text nor word2vec binary" in message and "fastText .vec" in message
