"""The column-kind seam (lfengine/data/kinds.py): a kind defined and registered here, in the test,
is encoded, batched, trained, stored and applied without any change to lfengine/.

Two kinds cover both shapes of part: ``ShapeChars`` (sequences, a ragged part: the characters of
the word-shape window columns) and ``ScorePowers`` (classification, a rows-aligned array: a
numeric column and its square). Each is registered only for the test that uses it
(``monkeypatch``), so the other tests see the built-in groups alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from lfengine import eject, service
from lfengine.data import kinds, reader
from lfengine.data.batching import collate
from lfengine.data.codec import Codec, build_codec
from lfengine.data.encoding import Ragged, encode_records
from lfengine.data.meta import data_path_for, read_meta
from lfengine.data.reader import read_data
from lfengine.data.synthetic import write_classification_corpus, write_sequence_corpus
from lfengine.errors import DataLineError, ModelError, OptionError
from lfengine.options import TrainOptions
from lfengine.storage import store


class ShapeChars(kinds.ColumnKind):
    """The word-shape window columns as one bag of characters per token (ragged part)."""

    name = "shape_chars"

    def claims(self, spec: Any, column: Any) -> bool:
        return spec.attribute_of(column).feature == "shape"

    def settings(self, spec: Any, columns: list) -> dict[str, Any]:
        seen = {ch for c in columns for word in spec.stats[c.name].string_counts for ch in word}
        return {"alphabet": "".join(sorted(seen))}

    def encode(self, settings: dict[str, Any], values: list[tuple], error: kinds.ErrorAt) -> Ragged:
        ids = {ch: i + 1 for i, ch in enumerate(settings["alphabet"])}
        columns = settings["columns"]
        rows = []
        for row, words in enumerate(zip(*values)):
            for column, word in zip(columns, words):
                if not isinstance(word, str):
                    raise error(row, column, "wrong value type", expected="a string", found=repr(word))
            rows.append([ids.get(ch, 0) for word in words for ch in word])
        lengths = np.array([0] + [len(r) for r in rows], dtype=np.int64)
        flat = np.array([i for r in rows for i in r], dtype=np.int32)
        return Ragged(flat, np.cumsum(lengths))

    def width(self, settings: dict[str, Any], config: Any) -> int:
        return 5

    def module(self, settings: dict[str, Any], config: Any) -> nn.Module:
        return BagOfChars(len(settings["alphabet"]) + 1, 5)


class BagOfChars(nn.Module):
    def __init__(self, size: int, dims: int) -> None:
        super().__init__()
        self.table = nn.Embedding(size, dims, padding_idx=0)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, mask: Any) -> torch.Tensor:
        return self.table(ids).sum(-2) / lengths.clamp(min=1).unsqueeze(-1)


class ScorePowers(kinds.ColumnKind):
    """The numeric column ``score`` as (score, score squared): a rows-aligned part."""

    name = "score_powers"

    def claims(self, spec: Any, column: Any) -> bool:
        return spec.attribute_of(column).feature == "score"

    def settings(self, spec: Any, columns: list) -> dict[str, Any]:
        stats = spec.stats[columns[0].name]
        return {"scale": abs(stats.mean) + stats.variance**0.5}

    def encode(self, settings: dict[str, Any], values: list[tuple], error: kinds.ErrorAt) -> np.ndarray:
        x = np.asarray(values[0], dtype=np.float32) / settings["scale"]
        return np.stack([x, x * x], axis=1)

    def width(self, settings: dict[str, Any], config: Any) -> int:
        return 2

    def module(self, settings: dict[str, Any], config: Any) -> nn.Module:
        return Passthrough()


class Passthrough(nn.Module):
    def forward(self, part: torch.Tensor, lengths: Any, mask: Any) -> torch.Tensor:
        return part


@pytest.fixture
def shape_chars(monkeypatch: pytest.MonkeyPatch) -> ShapeChars:
    kind = ShapeChars()
    monkeypatch.setitem(kinds.KINDS, kind.name, kind)
    return kind


@pytest.fixture
def score_powers(monkeypatch: pytest.MonkeyPatch) -> ScorePowers:
    kind = ScorePowers()
    monkeypatch.setitem(kinds.KINDS, kind.name, kind)
    return kind


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small tagging corpus (word-shape window columns) and a classification one (a score)."""
    folder = tmp_path_factory.mktemp("corpora")
    return {
        "seq": write_sequence_corpus(folder / "seq", 60, seed=3),
        "cls": write_classification_corpus(folder / "cls", 120, seed=5),
    }


@pytest.fixture
def seq_meta(corpora: dict[str, Path]) -> Path:
    return corpora["seq"]


@pytest.fixture
def cls_meta(corpora: dict[str, Path]) -> Path:
    return corpora["cls"]


def _records(meta: Path) -> list:
    return [json.loads(line) for line in data_path_for(meta).read_text().splitlines()]


def test_a_registered_kind_claims_its_columns_and_the_codec_stores_it(
    seq_meta: Path, shape_chars: ShapeChars
) -> None:
    codec, _ = build_codec(read_meta(str(seq_meta)))
    assert [c.name for c in codec.nominal] == [codec.column_names[0]]  # the shape window is claimed
    settings = codec.kinds["shape_chars"]
    assert settings["columns"] == [1, 2, 3] and "Aa" in settings["alphabet"]
    again = Codec.from_dict(json.loads(json.dumps(codec.to_dict())))
    assert again.kinds == codec.kinds and again.layout().kinds == codec.layout().kinds


def _stored_part(codec: dict, kind: str) -> dict:
    return next(part for part in codec["parts"] if part["kind"] == kind)


def test_the_stored_codec_lists_its_parts_in_order_registered_kinds_last(
    seq_meta: Path, shape_chars: ShapeChars
) -> None:
    codec, _ = build_codec(read_meta(str(seq_meta)))
    stored = codec.to_dict()
    assert [part["kind"] for part in stored["parts"]] == [
        "nominal",
        "numeric",
        "lists",
        "chars",
        "shape_chars",
    ]
    assert "kinds" not in stored and "nominal" not in stored
    assert _stored_part(stored, "shape_chars") == {"kind": "shape_chars", **codec.kinds["shape_chars"]}


def test_without_a_kind_the_stored_codec_has_built_in_parts_only(seq_meta: Path) -> None:
    codec, _ = build_codec(read_meta(str(seq_meta)))
    assert codec.kinds == {}
    assert [part["kind"] for part in codec.to_dict()["parts"]] == ["nominal", "numeric", "lists", "chars"]
    assert [c.name for c in codec.nominal] == codec.column_names  # token and the shape window


def test_a_ragged_part_is_padded_per_token_in_sequence_batches(
    seq_meta: Path, shape_chars: ShapeChars
) -> None:
    codec, _ = build_codec(read_meta(str(seq_meta)))
    records = _records(seq_meta)[:4]
    data = encode_records(codec, records, labeled=True, locate=lambda i: {"index": i})
    batch = collate(data, np.array([0, 3]))
    ids, lengths = batch.kinds["shape_chars"], batch.kind_lengths["shape_chars"]
    longest = max(len(records[0][0]), len(records[3][0]))
    assert ids.shape[:2] == lengths.shape == (2, longest)
    alphabet = codec.kinds["shape_chars"]["alphabet"]
    first = records[0][0][0][1:]  # the shape window of the first token of the first sentence
    assert "".join(alphabet[i - 1] for i in ids[0, 0, : lengths[0, 0]].tolist()) == "".join(first)
    for k, n in enumerate(lengths[1].tolist()):
        assert (n == 0) == (k >= len(records[3][0]))  # padded positions are empty


def test_a_bad_value_in_a_claimed_column_names_file_line_and_feature(
    seq_meta: Path, shape_chars: ShapeChars
) -> None:
    codec, _ = build_codec(read_meta(str(seq_meta)))
    records = _records(seq_meta)[:3]
    records[2][0][1][2] = 7
    with pytest.raises(DataLineError) as caught:
        encode_records(codec, records, labeled=True, locate=lambda i: {"file": "d.json", "line": i + 1})
    text = str(caught.value)
    assert "d.json" in text and "3" in text and "element 1" in text and codec.column_names[2] in text


def test_a_network_trains_over_a_ragged_kind_and_loads_for_apply(
    seq_meta: Path, shape_chars: ShapeChars, tmp_path: Path
) -> None:
    options = TrainOptions(max_epochs=2, threads=1, device="cpu", seed=1)
    result = service.train(str(seq_meta), str(tmp_path / "m"), options)
    assert result["epochs"] == 2
    metadata, weights = store.load_model_dir(tmp_path / "m")
    stored = _stored_part(metadata["codec"], "shape_chars")
    assert stored["columns"] == [1, 2, 3]
    table = weights["features.kinds.shape_chars.table.weight"]
    assert table.shape == (len(stored["alphabet"]) + 1, 5)
    model = service.load_model(str(tmp_path / "m"))
    tokens = _records(seq_meta)[0][0]
    (reply,) = model.apply([tokens])
    assert len(reply["label"]) == len(tokens)


def test_a_network_trains_over_an_array_kind(
    cls_meta: Path, score_powers: ScorePowers, tmp_path: Path
) -> None:
    codec, _ = build_codec(read_meta(str(cls_meta)))
    assert codec.kinds["score_powers"]["columns"] == [1]
    assert [c.name for c in codec.numeric] == [codec.column_names[2]]  # the boolean stays numeric
    options = TrainOptions(max_epochs=2, threads=1, device="cpu", seed=1)
    result = service.train(str(cls_meta), str(tmp_path / "m"), options)
    assert result["epochs"] == 2
    model = service.load_model(str(tmp_path / "m"))
    replies = model.apply([r[0] for r in _records(cls_meta)[:5]])
    assert len(replies) == 5


def test_a_model_naming_an_unregistered_kind_is_refused(seq_meta: Path) -> None:
    codec, _ = build_codec(read_meta(str(seq_meta)))
    stored = codec.to_dict()
    stored["parts"].append({"kind": "no_such_kind", "columns": [1]})
    with pytest.raises(ModelError, match="no_such_kind"):
        Codec.from_dict(stored)


def test_a_bad_line_in_a_data_file_is_reported_with_its_file_and_line(
    seq_meta: Path, shape_chars: ShapeChars, tmp_path: Path
) -> None:
    codec, _ = build_codec(read_meta(str(seq_meta)))
    records = _records(seq_meta)[:5]
    records[3][0][0][3] = ["not", "a", "string"]
    bad = tmp_path / "bad.data.json"
    bad.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(DataLineError) as caught:
        read_data(codec, bad)
    assert caught.value.file == str(bad) and caught.value.line == 4
    assert "element 0" in str(caught.value) and codec.column_names[3] in str(caught.value)
    kept = read_data(codec, bad, skip_bad_lines=True)
    assert kept.skipped == 1 and len(kept.data) == 4


@pytest.mark.parametrize("corpus", ["seq", "cls"])
def test_chunks_and_subsets_keep_each_rows_part(
    corpus: str,
    seq_meta: Path,
    cls_meta: Path,
    shape_chars: ShapeChars,
    score_powers: ScorePowers,
    monkeypatch,
) -> None:
    meta = seq_meta if corpus == "seq" else cls_meta
    name = "shape_chars" if corpus == "seq" else "score_powers"
    codec, _ = build_codec(read_meta(str(meta)))
    whole = encode_records(codec, _records(meta), labeled=True, locate=lambda i: {"index": i})
    monkeypatch.setattr(reader, "CHUNK_LINES", 7)
    chunked = read_data(codec, data_path_for(meta)).data
    items = np.array([5, 0, 11])
    for data in (chunked, chunked.subset(items)):
        expected = whole if data is chunked else whole.subset(items)
        got, want = data.kinds[name], expected.kinds[name]
        if isinstance(want, Ragged):
            assert np.array_equal(got.values, want.values) and np.array_equal(got.offsets, want.offsets)
        else:
            assert np.array_equal(got, want)
    picked = collate(chunked, items).kinds[name]
    assert torch.equal(picked, collate(whole, items).kinds[name])


def test_eject_refuses_a_network_with_a_kind_it_cannot_write(
    seq_meta: Path, shape_chars: ShapeChars, tmp_path: Path
) -> None:
    source = eject.source_from_meta(str(seq_meta), TrainOptions())
    with pytest.raises(OptionError, match="shape_chars"):
        eject.eject(source, str(tmp_path / "net.py"))
    assert not (tmp_path / "net.py").exists()
