"""Padding into batches, validation splits and per-epoch batch orders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lfengine.data.batch import IGNORE_INDEX
from lfengine.data.batching import batch_indices, collate, split_indices, validation_size
from lfengine.data.codec import build_codec
from lfengine.data.meta import read_meta
from lfengine.data.reader import encode_instances, read_data
from lfengine.errors import OptionError


def read(lfdata, name):
    spec = read_meta(lfdata / f"{name}.meta.json")
    codec, _ = build_codec(spec)
    return codec, read_data(codec, spec.data_path()).data


def test_collate_sequences(lfdata):
    codec, data = read(lfdata, "seq-pos1")
    items = np.array([0, 1, 852])  # 3, 8 and 20 elements
    batch = collate(data, items)
    assert batch.nominal.shape == (3, 20, 18) and batch.nominal.dtype == torch.int64
    assert batch.numeric.shape == (3, 20, 0)
    assert batch.lengths.tolist() == [3, 8, 20] and batch.size == 3
    assert batch.mask.sum().item() == 31
    assert batch.targets.shape == (3, 20)
    assert batch.targets[0].tolist() == [7, 7, 7] + [IGNORE_INDEX] * 17
    assert (batch.targets[1, 8:] == IGNORE_INDEX).all() and (batch.targets[2] != IGNORE_INDEX).all()
    assert not batch.nominal[0, 3:].any()  # padded positions are PAD
    assert batch.nominal[1, 0].tolist() == [0, 0, 0, 1239, 339, 48, 0, 0, 0, 62, 62, 37, 0, 0, 0, 0, 0, 0]
    assert batch.chars.shape[:2] == (3, 20) and not batch.chars[0, 3:].any()
    word = "".join(codec.char_vocab.itos[i] for i in batch.chars[0, 0].tolist() if i)
    assert word == "awful"


def test_collate_lists_and_targets(lfdata):
    codec, data = read(lfdata, "class-ngram-sp1")
    batch = collate(data, np.array([0, 1]))
    assert batch.nominal.shape == (2, 0) and batch.lengths is None
    (tokens,) = batch.lists
    assert tokens.shape == (2, 10) and batch.list_lengths[0].tolist() == [6, 10]
    assert tokens[0].tolist() == [3543, 9, 5, 629, 22, 2, 0, 0, 0, 0]
    assert batch.targets.tolist() == [1, 0]
    empty = collate(encode_instances(codec, [[[]], [[]]]), np.array([0, 1]))
    assert empty.lists[0].shape == (2, 1) and empty.list_lengths[0].tolist() == [0, 0]


def test_collate_empty_sequence(lfdata):
    codec, _ = read(lfdata, "seq-pos2")
    batch = collate(encode_instances(codec, [[], [["the"]]]), np.array([0, 1]))
    assert batch.lengths.tolist() == [0, 1] and batch.nominal.shape == (2, 1, 1)
    assert batch.nominal[:, 0, 0].tolist() == [0, 2]


def test_split_is_seeded_and_sized():
    train, val = split_indices(100, 0.1, seed=3)
    again_train, again_val = split_indices(100, 0.1, seed=3)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert (len(train), len(val)) == (90, 10)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    assert not np.array_equal(val, split_indices(100, 0.1, seed=4)[1])
    assert val.tolist() != list(range(90, 100))
    assert split_indices(100, 0.1, seed=3, shuffle=False)[1].tolist() == list(range(90, 100))
    assert len(split_indices(100, 5, seed=1)[1]) == 5
    assert len(split_indices(100, 1, seed=1)[1]) == 1  # 1 is a count, not the fraction 1.0
    assert len(split_indices(100, 0, seed=1)[1]) == 0
    assert validation_size(1000, None) == 100
    with pytest.raises(OptionError):
        validation_size(10, 10)


def test_each_epoch_has_its_own_order():
    rng = np.random.default_rng(5)
    lengths = np.ones(100, dtype=np.int64)
    epochs = [batch_indices(lengths, 8, rng=rng, bucket=False) for _ in range(3)]
    orders = [np.concatenate(e) for e in epochs]
    for order in orders:
        assert sorted(order.tolist()) == list(range(100))
    assert len(epochs[0]) == 13 and len(epochs[0][-1]) == 4
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    same = [np.concatenate(batch_indices(lengths, 8, rng=np.random.default_rng(5), bucket=False))]
    assert np.array_equal(same[0], orders[0])  # the seed fixes the whole schedule
    assert np.concatenate(batch_indices(lengths, 8, rng=None, bucket=False)).tolist() == list(range(100))


def test_bucketing_groups_similar_lengths():
    lengths = np.random.default_rng(0).integers(1, 100, size=2000)

    def mean_spread(bucket: bool) -> float:
        batches = batch_indices(lengths, 20, rng=np.random.default_rng(1), bucket=bucket)
        assert sorted(np.concatenate(batches).tolist()) == list(range(2000))
        return float(np.mean([np.ptp(lengths[b]) for b in batches]))

    assert mean_spread(True) < 5 and mean_spread(False) > 60
    first = [b[0] for b in batch_indices(lengths, 20, rng=np.random.default_rng(1), bucket=True)]
    assert not np.all(np.diff(lengths[first]) >= 0)  # batch order is shuffled, not sorted by length
