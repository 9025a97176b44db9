"""Encoding of values: missing values, booleans, list values, onehot and empty vocabularies,
application batches and chunked reading (lf-format.md §5, §9, D4, D11-D13)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lfengine.data import reader
from lfengine.data.codec import Codec, build_codec
from lfengine.data.meta import read_meta
from lfengine.data.reader import encode_instances, read_data
from lfengine.data.synthetic import LfAttribute
from lfengine.errors import DataLineError

MIXED = [
    LfAttribute("A", "word", ann_type="", emb_id="w"),
    LfAttribute("A", "score", ann_type="", datatype="numeric"),
    LfAttribute("A", "flag", ann_type="", datatype="bool"),
    LfAttribute("N", "string", emb_id="w"),
]
MIXED_RECORDS = [
    [["red", 1.0, True, ["red", "green"]], "a"],
    [["green", 3.0, False, ["blue"]], "b"],
    [["red", 2.0, True, []], "a"],
]


def load(meta):
    spec = read_meta(meta)
    codec, matrices = build_codec(spec)
    return spec, codec, matrices


def test_mixed_columns_are_grouped_and_encoded(lf_pair):
    spec, codec, _ = load(lf_pair(MIXED, MIXED_RECORDS))
    assert [c.index for c in codec.nominal] == [0]
    assert [c.index for c in codec.numeric] == [1, 2]
    assert [c.index for c in codec.lists] == [3]
    assert codec.vocabs["w"].itos == ["", "<<oov>>", "red", "green", "blue"]  # red 3, green 2, blue 1
    data = read_data(codec, spec.data_path()).data
    assert data.nominal[:, 0].tolist() == [2, 3, 2]
    score = spec.stats["\u2506score\u256cA"]
    assert (score.mean, score.variance) == (2.0, 1.0)
    np.testing.assert_allclose(data.numeric[:, 0], [-1.0, 1.0, 0.0])
    assert data.numeric[:, 1].tolist() == [1.0, 0.0, 1.0]  # booleans are 1.0/0.0, never scaled
    assert data.lists[0].values.tolist() == [2, 3, 4] and data.lists[0].offsets.tolist() == [0, 2, 3, 3]
    assert data.targets.tolist() == [0, 1, 0]


def test_boolean_spelling_is_accepted(lf_pair):
    def spell_boolean(meta):
        meta["features"][2]["datatype"] = "boolean"
        meta["featureInfo"]["attributes"][2]["datatype"] = "boolean"

    spec, codec, _ = load(lf_pair(MIXED, MIXED_RECORDS, patch=spell_boolean))
    assert spec.columns[2].datatype == "bool"
    assert read_data(codec, spec.data_path()).data.numeric[:, 1].tolist() == [1.0, 0.0, 1.0]


def test_null_is_the_missing_value_of_its_column(lf_pair):
    spec, codec, _ = load(lf_pair(MIXED, MIXED_RECORDS))
    encoded = encode_instances(codec, [[None, None, None, None], ["", 0.0, False, []]])
    assert encoded.nominal[:, 0].tolist() == [0, 0]
    np.testing.assert_array_equal(encoded.numeric[0], encoded.numeric[1])
    assert encoded.numeric[0, 1] == 0.0
    assert encoded.lists[0].offsets.tolist() == [0, 0, 0]
    with pytest.raises(DataLineError, match="list item"):  # N lists never hold null items (§5.4)
        encode_instances(codec, [[None, 2.0, True, ["red", None]]])


def test_unknown_values_map_to_oov(lf_pair):
    _, codec, _ = load(lf_pair(MIXED, MIXED_RECORDS))
    encoded = encode_instances(codec, [["purple", 2.0, True, ["purple", "red"]]])
    assert encoded.nominal[0, 0] == 1 and encoded.lists[0].values.tolist() == [1, 2]


def test_onehot_unknown_value_maps_to_pad(lfdata):
    spec = read_meta(lfdata / "class-window-pos1.meta.json")
    codec, _ = build_codec(spec)
    vector = ["zzunseen"] * 6 + ["NOUN", "NOSUCHTAG"] + ["a"] * 6 + ["ed"] * 12
    encoded = encode_instances(codec, [vector])
    assert encoded.nominal[0, :6].tolist() == [1] * 6  # token: OOV
    assert encoded.nominal[0, 6:8].tolist() == [1, 0]  # label (onehot): NOUN, unknown -> PAD (D11)


def test_empty_vocabulary_gets_pad_and_oov(lf_pair):
    attributes = [LfAttribute("N", "string", emb_id="empty"), LfAttribute("A", "word", emb_id="w")]
    meta = lf_pair(attributes, [[[[], "x"], "a"], [[[], "y"], "b"]])
    spec, codec, matrices = load(meta)
    assert spec.stats["Token\u2506string\u256cN1"].string_counts == {}
    assert codec.vocabs["empty"].itos == ["", "<<oov>>"] and codec.embeddings["empty"].dims == 2
    assert matrices["empty"].shape == (2, 2) and not matrices["empty"][0].any()
    data = read_data(codec, spec.data_path()).data
    assert data.lists[0].offsets.tolist() == [0, 0, 0]


def test_listsep_values_in_a_columns_are_lists(lf_pair):
    attributes = [LfAttribute("A", "tags", listsep=";", emb_id="tags"), LfAttribute("A", "word", emb_id="w")]
    records = [[[["x", "y"], "p"], "a"], [["", "q"], "b"], [[["y"], "p"], "a"]]
    spec, codec, _ = load(lf_pair(attributes, records))
    assert spec.attributes[0].is_list and [c.index for c in codec.lists] == [0]
    assert codec.vocabs["tags"].itos == ["", "<<oov>>", "y", "x"]  # "" is counted but never an entry
    data = read_data(codec, spec.data_path()).data
    assert data.lists[0].values.tolist() == [3, 2, 2]
    assert data.lists[0].offsets.tolist() == [0, 2, 2, 3]  # the missing value "" is an empty list


def test_application_batches_for_sequences(lfdata):
    spec = read_meta(lfdata / "seq-pos2.meta.json")
    codec, _ = build_codec(spec)
    encoded = encode_instances(codec, [[["horse"], ["racing"]], [], [["york"]]])
    assert encoded.lengths().tolist() == [2, 0, 1]
    assert encoded.nominal[:, 0].tolist() == [590, 738, 913] and encoded.targets is None
    assert codec.char_vocab is not None and encoded.chars.offsets.tolist() == [0, 5, 11, 15]
    itos = codec.char_vocab.itos
    assert "".join(itos[i] for i in encoded.chars.values[:5]) == "horse"
    with pytest.raises(DataLineError) as info:
        encode_instances(codec, [[["a"]], [["b"], ["c", "d"]]])
    assert info.value.index == 1 and "element 1" in info.value.message


def test_chunked_reading_gives_the_same_arrays(lfdata, monkeypatch):
    for name in ("seq-pos2", "class-ngram-sp1"):
        spec = read_meta(lfdata / f"{name}.meta.json")
        codec, _ = build_codec(spec)
        whole = read_data(codec, spec.data_path()).data
        monkeypatch.setattr(reader, "CHUNK_LINES", 7)
        chunked = read_data(codec, spec.data_path()).data
        monkeypatch.undo()
        assert np.array_equal(whole.nominal, chunked.nominal) and np.array_equal(
            whole.targets, chunked.targets
        )
        for a, b in zip(whole.lists, chunked.lists):
            assert np.array_equal(a.values, b.values) and np.array_equal(a.offsets, b.offsets)
        if whole.seq_offsets is not None:
            assert np.array_equal(whole.seq_offsets, chunked.seq_offsets)
            assert np.array_equal(whole.chars.values, chunked.chars.values)
            assert np.array_equal(whole.chars.offsets, chunked.chars.offsets)


def test_subset_keeps_sequences_whole(lfdata):
    spec = read_meta(lfdata / "seq-pos2.meta.json")
    codec, _ = build_codec(spec)
    data = read_data(codec, spec.data_path()).data
    part = data.subset(np.array([99, 0]))
    assert part.lengths().tolist() == [4, 11]
    assert part.nominal[:4, 0].tolist() == [57, 198, 259, 366]
    assert part.targets[4:].tolist() == data.targets[:11].tolist()


def test_regression_targets_are_standardised(lf_pair):
    attributes = [LfAttribute("A", "x", ann_type="", datatype="numeric")]
    spec, codec, _ = load(lf_pair(attributes, [[[1.0], 10.0], [[2.0], 20.0], [[3.0], 30.0]]))
    assert (codec.task, codec.labels, codec.target_mean, codec.target_std) == ("regression", [], 20.0, 10.0)
    data = read_data(codec, spec.data_path()).data
    assert data.targets.dtype == np.float32 and data.targets.tolist() == [-1.0, 0.0, 1.0]
    with pytest.raises(DataLineError, match="finite number") as info:
        encode_instances(codec, [[[1.0], 5.0], [[1.0], "high"]], labeled=True)
    assert info.value.index == 1


def test_codec_survives_a_json_round_trip(lfdata):
    for name in ("class-window-pos1", "seq-pos1"):
        spec = read_meta(lfdata / f"{name}.meta.json")
        codec, _ = build_codec(spec)
        restored = Codec.from_dict(json.loads(json.dumps(codec.to_dict())))
        assert restored.layout() == codec.layout()
        original, again = read_data(codec, spec.data_path()).data, read_data(restored, spec.data_path()).data
        assert np.array_equal(original.nominal, again.nominal) and np.array_equal(
            original.targets, again.targets
        )
        if codec.char_vocab is not None:
            assert np.array_equal(original.chars.values, again.chars.values)


def test_empty_training_sequences_are_kept(lf_pair):
    records = [[[["the"], ["cat"]], ["O", "X"]], [[], []], [[["a"]], ["O"]]]
    meta = lf_pair([LfAttribute("A", "string", emb_id="w")], records, is_sequence=True)
    spec, codec, _ = load(meta)
    assert spec.seq_lengths["min"] == 0.0
    data = read_data(codec, spec.data_path()).data
    assert data.lengths().tolist() == [2, 0, 1] and data.targets.tolist() == [0, 1, 0]
    assert data.chars.offsets.tolist() == [0, 3, 6, 7]
