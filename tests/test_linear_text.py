"""The text classifier's NB-weighted linear model (builder/linear_text.py): fitted by L-BFGS before
the network trains, it learns the training split from words and word pairs, points each word the
way its label counts do, stores and loads back, takes the share of the mix that the validation
labels favour, leaves the network's training untouched, and is ejected with the network."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from lfengine import cli, service
from lfengine.builder import sparse_weights
from lfengine.builder.heuristics import choose_config
from lfengine.builder.linear_text import LinearText
from lfengine.builder.networks import Classifier
from lfengine.builder.sparse_weights import SparseWeights
from lfengine.data.batching import collate
from lfengine.data.codec import build_codec
from lfengine.data.meta import read_meta
from lfengine.data.reader import read_data
from lfengine.data.synthetic import LfAttribute
from lfengine.eject import load_weights
from lfengine.errors import OptionError
from lfengine.options import TrainOptions
from lfengine.predictor import Predictor
from lfengine.storage import store
from tests.test_eject import _import_class


@pytest.fixture(scope="module")
def text(lfdata: Path):
    """class-ngram-sp1 (sentence polarity, one token-list column): codec, head, tail, layout."""
    spec = read_meta(lfdata / "class-ngram-sp1.meta.json")
    codec, _ = build_codec(spec, embs=None, maxlens=None, seed=1)
    data = read_data(codec, spec.data_path()).data
    return codec, data.subset(np.arange(800)), data.subset(np.arange(800, len(data))), codec.layout()


@pytest.fixture(scope="module")
def fitted(text) -> LinearText:
    _, head, _, layout = text
    model = LinearText(layout)
    model.fit(head)
    return model


def _accuracy(model: LinearText, data) -> float:
    batch = collate(data, np.arange(len(data)))
    with torch.no_grad():
        return float((model.scores(batch).argmax(-1) == batch.targets).double().mean())


def test_the_fit_learns_the_training_data_and_generalises(text, fitted: LinearText) -> None:
    _, head, tail, _ = text
    assert fitted.fitted and len(fitted.keys) > 10000  # words and word pairs
    assert _accuracy(fitted, head) > 0.95
    assert _accuracy(fitted, tail) > 0.6  # majority 0.5; NB-weighted LR scores 0.645 on this tail
    assert not any(p.requires_grad for p in fitted.parameters())  # the network's optimizer skips it


def test_a_word_seen_with_one_label_only_points_to_it(lf_pair, tmp_path: Path) -> None:
    records = [[[["good", "film"]], "pos"], [[["good", "cast"]], "pos"], [[["bad", "film"]], "neg"]] * 5
    meta = lf_pair([LfAttribute("N", "string", number=1, name="text", emb_id="w")], records)
    spec = read_meta(meta)
    codec, _ = build_codec(spec, embs=None, maxlens=None, seed=1)
    data = read_data(codec, spec.data_path()).data
    model = LinearText(codec.layout())
    model.fit(data)
    labels = list(codec.layout().labels)

    def leaning(words: list[str]) -> float:
        batch = collate(read_data(codec, _single(tmp_path, words)).data, np.arange(1))
        scores = model.scores(batch)[0]
        return float(scores[labels.index("pos")] - scores[labels.index("neg")])

    assert leaning(["good"]) > 0 > leaning(["bad"])
    assert leaning(["good", "good", "good"]) == pytest.approx(leaning(["good"]))  # features are binary
    assert leaning(["film"]) < leaning(["cast"])  # "film" is in a negative item too


def _single(tmp_path: Path, words: list[str]) -> Path:
    path = tmp_path / f"one-{len(list(tmp_path.iterdir()))}.data.json"
    path.write_text(json.dumps([[words], "pos"]) + "\n", encoding="utf-8")
    return path


def test_stored_weights_load_into_a_fresh_model(text, fitted: LinearText) -> None:
    _, _, tail, layout = text
    fresh = LinearText(layout)
    fresh.load_state_dict(fitted.state_dict())
    batch = collate(tail, np.arange(len(tail)))
    with torch.no_grad():
        assert torch.equal(fresh.scores(batch), fitted.scores(batch))
    for share in (torch.tensor(1.5), torch.tensor(float("nan")), torch.ones(2)):  # from a tampered file
        with pytest.raises(RuntimeError, match="share must be one number within 0..1"):
            LinearText(layout).load_state_dict({**fitted.state_dict(), "share": share})


def test_the_share_follows_the_better_model_on_validation(text, fitted: LinearText, caplog) -> None:
    _, _, tail, layout = text
    caplog.set_level(logging.INFO, logger="lfengine.trainer")

    def sure_and_wrong(batch):
        return torch.nn.functional.one_hot(1 - batch.targets, layout.num_labels).double() * 20

    def sure_and_right(batch):
        return torch.nn.functional.one_hot(batch.targets, layout.num_labels).double() * 20

    with torch.no_grad():
        assert fitted.choose_share(tail, sure_and_wrong) == 1.0
        assert fitted.choose_share(tail, sure_and_right) == 0.0
        assert fitted.choose_share(tail, sure_and_right) == 0.0  # unchanged: not shown again
        batch = collate(tail, np.arange(len(tail)))
        mixed = fitted.mix(batch, torch.softmax(sure_and_right(batch).float(), dim=-1))
    assert torch.equal(mixed.label_ids, batch.targets)
    shown = [r.getMessage() for r in caplog.records if "share of the mix" in r.getMessage()]
    assert shown == [  # the user sees each move, and no line while it stays
        "linear text model's share of the mix: 1.00 (was 0.50)",
        "linear text model's share of the mix: 0.00 (was 1.00)",
    ]
    fitted.share.fill_(0.5)


def test_the_network_trains_the_same_with_or_without_it(lfdata: Path, tmp_path: Path) -> None:
    """No validation split (the share stays 1/2) and no gated evidence (the network's only reader of
    the linear model: test_gated_evidence.py): the network's weights come out bit for bit the same."""
    meta = str(lfdata / "class-ngram-sp1.meta.json")
    for on in ("true", "false"):
        args = ["train", meta, str(tmp_path / on), "--max-epochs", "2", "--valsize", "0", "--threads", "1"]
        gate = ["--set", "gated_evidence=false"] if on == "true" else []
        assert cli.main([*args, "--set", f"linear_text={on}", *gate, "-q"]) == 0
    with_it, without = (
        torch.load(store.committed_file(tmp_path / on, "weights"), weights_only=True)
        for on in ("true", "false")
    )
    assert {k for k in with_it if not k.startswith("linear.")} == set(without)
    assert all(torch.equal(with_it[k], without[k]) for k in without)
    assert len(with_it["linear.keys"]) == len(with_it["linear.weights"]) > 10000
    assert float(with_it["linear.share"]) == 0.5


def test_it_is_on_for_text_only_and_refused_for_tagging(text, lfdata: Path) -> None:
    _, head, _, layout = text
    assert choose_config(layout, TrainOptions(), len(head))[0].linear_text
    window = read_meta(lfdata / "class-window-pos1.meta.json")
    window_layout = build_codec(window, embs=None, maxlens=None, seed=1)[0].layout()
    assert not choose_config(window_layout, TrainOptions(), 800)[0].linear_text
    seq = read_meta(lfdata / "seq-pos2.meta.json")
    seq_layout = build_codec(seq, embs=None, maxlens=None, seed=1)[0].layout()
    with pytest.raises(OptionError, match="linear_text applies to classification only"):
        choose_config(seq_layout, TrainOptions(model={"linear_text": True}), 80)
    config = dataclasses.replace(choose_config(layout, TrainOptions(), len(head))[0], linear_text=False)
    assert Classifier(layout, config).linear is None


def test_ejected_text_classifier_predicts_and_trains_like_the_built_one(lfdata: Path, tmp_path: Path) -> None:
    meta = str(lfdata / "class-ngram-sp1.meta.json")
    options = TrainOptions(max_epochs=2, threads=1, device="cpu")
    service.train(meta, str(tmp_path / "built"), options)
    source = tmp_path / "text_net.py"
    assert cli.main(["eject", str(tmp_path / "built"), "-o", str(source)]) == 0
    assert "self.linear = LinearText(layout)" in source.read_text(encoding="utf-8")
    network, codec = load_weights(_import_class(source, "TextNet"), str(tmp_path / "built"))
    keys = len(network.linear.keys)
    # describe MODEL_DIR shows the fitted model (its size and share), not the empty one training planned
    described = service.load_model(str(tmp_path / "built")).describe()["architecture"]
    assert f"{keys:,} words and word pairs, share {float(network.linear.share):.2f}" in described["text"]
    planned = service.describe(meta, options)["architecture"]["parameters"]
    assert described["parameters"] == planned + keys * network.layout.num_labels
    items = (lfdata / "class-ngram-sp1.data.json").read_text(encoding="utf-8").splitlines()
    instances = [json.loads(line)[0] for line in items[:200]]
    built = service.load_model(str(tmp_path / "built")).apply(instances, distribution=True)
    assert Predictor(network, codec, "cpu").apply(instances, distribution=True) == built

    module_options = dataclasses.replace(options, module=f"{source}:TextNet")
    service.train(meta, str(tmp_path / "ejected"), module_options)
    first, second = (
        torch.load(store.committed_file(tmp_path / name, "weights"), weights_only=True)
        for name in ("built", "ejected")
    )
    assert first.keys() == second.keys() and "linear.share" in first
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_the_rarest_features_go_first_beyond_the_cap(monkeypatch) -> None:
    monkeypatch.setattr(sparse_weights, "MIN_KEYS", 1)
    monkeypatch.setattr(sparse_weights, "MAX_WEIGHTS", 4)  # 2 keys of 2 labels
    weights = SparseWeights(2)
    keys = torch.tensor([[5, 7, 9], [5, 7, 11], [5, 13, 0]])
    present = torch.tensor([[True, True, True], [True, True, True], [True, True, False]])
    weights.learn_keys([(keys, present)])
    assert weights.keys.tolist() == [5, 7] and weights.weights.shape == (2, 2)
    monkeypatch.setattr(sparse_weights, "MAX_WEIGHTS", 10)
    weights.learn_keys([(keys, present)])
    assert weights.keys.tolist() == [5, 7, 9, 11, 13]


def test_a_stop_during_the_fit_ends_the_run_at_once_and_resuming_fits_it(
    lfdata: Path, tmp_path: Path, caplog
):
    """The stop file is seen at the fit's first pass over the data, not once a fit of up to a
    minute has ended (bench/bench_cancel.py): no batch is trained, the kept model leaves the
    linear model out, and --resume fits it and ends as an uninterrupted run does."""
    meta = str(lfdata / "class-ngram-sp1.meta.json")
    stop = tmp_path / "halt"
    stop.touch()  # present from the start: seen by the fit

    def train(model: str, *extra: str) -> None:
        args = ["train", meta, str(tmp_path / model), "--max-epochs", "2", "--threads", "1", "-q"]
        assert cli.main([*args, *extra]) == 0

    caplog.set_level(logging.INFO, logger="lfengine")
    train("stopped", "--stop-file", str(stop))
    assert "linear text model not fitted: training was asked to stop during its fit" in caplog.text
    assert "linear text model fitted" not in caplog.text
    assert not stop.exists()  # the stop file is used up, and the run still stopped
    training = store.read_model_json(tmp_path / "stopped")["metadata"]["training"]
    assert (training["stopped"], training["epochs"]) == ("stop-file", 0)
    kept = torch.load(store.committed_file(tmp_path / "stopped", "weights"), weights_only=True)
    assert len(kept["linear.keys"]) == len(kept["linear.weights"]) == 0
    assert service.load_model(str(tmp_path / "stopped")).apply([[["good"]]])  # the network alone

    train("stopped", "--resume")
    train("whole")
    resumed, whole = (
        torch.load(store.committed_file(tmp_path / name, "weights"), weights_only=True)
        for name in ("stopped", "whole")
    )
    assert resumed.keys() == whole.keys() and len(whole["linear.keys"]) > 10000
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
