"""The tagger's classical CRF (builder/linear_crf.py): fitted by L-BFGS before the network trains,
it learns the training data from sparse token features alone, its stored weights load back into
a fresh network, averaging it in never yields a chunk GATE would drop, and the network it sits
beside starts from the same random weights as one without it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from lfengine import cli
from lfengine.builder.heuristics import choose_config
from lfengine.builder.linear_crf import LinearCrf
from lfengine.builder.networks import SequenceTagger
from lfengine.builder.sparse_weights import stop_check
from lfengine.data.batching import collate
from lfengine.data.codec import build_codec
from lfengine.data.meta import read_meta
from lfengine.data.reader import read_data
from lfengine.options import TrainOptions
from lfengine.storage import store
from tests.test_crf_constraints import _valid


@pytest.fixture(scope="module")
def ner(lfdata: Path):
    """seq-pos2 (LF NER chunks over real sentences): codec, training split, tail, layout."""
    spec = read_meta(lfdata / "seq-pos2.meta.json")
    codec, _ = build_codec(spec, embs=None, maxlens=None, seed=1)
    data = read_data(codec, spec.data_path()).data
    head = data.subset(np.arange(80))
    tail = data.subset(np.arange(80, len(data)))
    return codec, head, tail, codec.layout()


@pytest.fixture(scope="module")
def fitted(ner) -> LinearCrf:
    _, head, _, layout = ner
    model = LinearCrf(layout, list(layout.labels))
    model.fit(head)
    return model


def _accuracy(model: LinearCrf, data) -> float:
    batch = collate(data, np.arange(len(data)))
    with torch.no_grad():
        path = model.mix(batch, model.marginals(batch)).label_ids
    return float((path[batch.mask] == batch.targets[batch.mask]).double().mean())


def test_the_fit_learns_the_training_data_and_generalises(ner, fitted: LinearCrf) -> None:
    _, head, tail, _ = ner
    assert fitted.fitted and len(fitted.keys) > 1000
    majority = float((collate(tail, np.arange(len(tail))).targets == 0).double().mean())  # "O"
    assert _accuracy(fitted, head) > 0.99
    assert _accuracy(fitted, tail) > majority + 0.02
    assert not any(p.requires_grad for p in fitted.parameters())  # the network's optimizer skips it


def test_stored_weights_load_into_a_fresh_model(ner, fitted: LinearCrf) -> None:
    _, _, tail, layout = ner
    fresh = LinearCrf(layout, list(layout.labels))
    assert not fresh.fitted
    fresh.load_state_dict(fitted.state_dict())
    batch = collate(tail, np.arange(len(tail)))
    with torch.no_grad():
        assert torch.equal(fresh.marginals(batch), fitted.marginals(batch))


def test_the_average_never_opens_a_chunk_with_its_inside_label(ner, fitted: LinearCrf) -> None:
    _, _, tail, layout = ner
    batch = collate(tail, np.arange(len(tail)))
    inside = [i for i, label in enumerate(layout.labels) if label.endswith("|I")]
    network = torch.zeros(*batch.mask.shape, layout.num_labels, dtype=torch.float64)
    network[..., inside[0]] = 1.0  # a network sure that every token continues a chunk
    with torch.no_grad():
        mixed = fitted.mix(batch, network * batch.mask.unsqueeze(-1))
    for row, length in zip(mixed.label_ids, batch.lengths, strict=True):
        assert _valid([layout.labels[int(i)] for i in row[: int(length)]])
    real = mixed.distribution[batch.mask]
    assert torch.allclose(real.sum(-1), torch.ones(len(real), dtype=real.dtype))


def test_the_network_starts_from_the_same_weights_with_or_without_it(ner) -> None:
    codec, head, _, layout = ner
    config, _ = choose_config(layout, TrainOptions(), len(head))
    assert config.linear_crf  # on by default for tagging
    networks, draws = {}, {}
    for on in (True, False):
        torch.manual_seed(4)
        networks[on] = SequenceTagger(layout, dataclasses.replace(config, linear_crf=on))
        draws[on] = torch.rand(8)  # what training's dropout masks will start from
    assert torch.equal(draws[True], draws[False])
    with_it, without = networks[True].state_dict(), networks[False].state_dict()
    assert {k for k in with_it if not k.startswith("linear.")} == set(without)
    assert all(torch.equal(with_it[k], without[k]) for k in without)


def test_training_stores_it_and_a_resumed_run_keeps_it(lfdata: Path, tmp_path: Path) -> None:
    meta = str(lfdata / "seq-pos2.meta.json")
    model = tmp_path / "m"
    assert cli.main(["train", meta, str(model), "--max-epochs", "1", "-q"]) == 0
    first = torch.load(store.committed_file(model, "weights"), weights_only=True)
    assert len(first["linear.keys"]) == len(first["linear.weights"]) > 1000
    assert cli.main(["train", meta, str(model), "--max-epochs", "2", "--resume", "-q"]) == 0
    second = torch.load(store.committed_file(model, "weights"), weights_only=True)
    assert all(torch.equal(first[k], second[k]) for k in first if k.startswith("linear."))
    assert not torch.equal(first["output.weight"], second["output.weight"])  # the network trained on


def test_stored_weights_of_the_wrong_shape_are_refused(ner, fitted: LinearCrf) -> None:
    _, _, _, layout = ner
    state = dict(fitted.state_dict())
    state["weights"] = torch.zeros(len(fitted.keys), layout.num_labels + 1)  # one label too many
    with pytest.raises(RuntimeError, match="weights"):
        LinearCrf(layout, list(layout.labels)).load_state_dict(state)


def test_a_stop_asked_for_during_the_fit_leaves_it_unfitted(ner, fitted: LinearCrf) -> None:
    """The stop is asked for at the third pass over the data: the fit ends there, and predictions
    (and a resumed run, which fits again) see an unfitted model, not weights halfway to the optimum."""
    _, head, _, layout = ner
    asked = []
    model = LinearCrf(layout, list(layout.labels))
    with stop_check(lambda: asked.append(1) or len(asked) >= 3):
        model.fit(head)
    assert len(asked) == 3 and not model.fitted and model.weights.shape == (0, layout.num_labels)
    model.fit(head)  # outside stop_check nothing is asked: the same fit as without a stop
    assert torch.equal(model.keys, fitted.keys) and torch.equal(model.weights, fitted.weights)
