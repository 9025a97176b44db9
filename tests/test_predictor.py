"""Application of trained models: reload, batch independence, probabilities, unseen values, bad
instances and refusal of pickled weights. Models are trained once per module on generated data."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lfengine import service
from lfengine.data.reader import encode_instances
from lfengine.data.synthetic import write_classification_corpus, write_sequence_corpus, write_window_corpus
from lfengine.data.vocab import OOV_INDEX
from lfengine.errors import DataLineError, ModelError
from lfengine.options import TrainOptions
from lfengine.predictor import headline
from lfengine.storage import store


def _data_path(meta: Path) -> Path:
    return meta.with_name(meta.name.replace(".meta.", ".data."))


def _instances(meta: Path, limit: int | None = None) -> list:
    """The unlabeled feature vectors (or sequences of vectors) of a corpus."""
    lines = _data_path(meta).read_text(encoding="utf-8").splitlines()[:limit]
    return [json.loads(line)[0] for line in lines]


def _train(meta: Path, model_dir: Path, **options) -> service.LoadedModel:
    service.train(str(meta), str(model_dir), TrainOptions(threads=1, device="cpu", **options))
    return service.load_model(str(model_dir))


@pytest.fixture(scope="module")
def cls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, service.LoadedModel]:
    """Topic classifier: a token list (N), a number and a boolean."""
    root = tmp_path_factory.mktemp("cls")
    meta = write_classification_corpus(root / "train", 240, seed=5)
    val = write_classification_corpus(root / "val", 40, seed=6)
    model = _train(meta, root / "model", max_epochs=3, valfile=str(_data_path(val)))
    return val, model


@pytest.fixture(scope="module")
def seq_crf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, service.LoadedModel]:
    """Chunk tagger: chunk labels switch the CRF on; the token column feeds the char CNN."""
    root = tmp_path_factory.mktemp("seq")
    meta = write_sequence_corpus(root / "train", 80, seed=3)
    val = write_sequence_corpus(root / "val", 20, seed=4)
    model = _train(meta, root / "model", max_epochs=3, valfile=str(_data_path(val)))
    return val, model


@pytest.fixture(scope="module")
def seq_softmax(tmp_path_factory: pytest.TempPathFactory) -> service.LoadedModel:
    root = tmp_path_factory.mktemp("seqsm")
    meta = write_sequence_corpus(root, 60, seed=8)
    return _train(meta, root / "model", max_epochs=2, model={"crf": False})


@pytest.fixture(scope="module")
def window(tmp_path_factory: pytest.TempPathFactory) -> service.LoadedModel:
    """26 nominal window columns, two of them onehot (the previous labels)."""
    root = tmp_path_factory.mktemp("win")
    meta = write_window_corpus(root, 200, seed=2)
    return _train(meta, root / "model", max_epochs=1, valsize=0)


# --- reload ----------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["cls", "seq_crf"])
def test_reloaded_model_reproduces_the_training_time_validation(which: str, request) -> None:
    """The validation metrics computed by the in-memory network during training (best epoch)
    are reproduced by the model loaded from disk: the same predictions, the same loss up to the
    rounding of another thread count (training ran with one thread, this process may use more)."""
    val, model = request.getfixturevalue(which)
    training = model.metadata["training"]
    best = next(e for e in training["history"] if e["epoch"] == training["best_epoch"])
    again = headline(model.evaluate(str(_data_path(val))))
    assert {k: v for k, v in again.items() if k != "loss"} == {
        k: v for k, v in best["validation"].items() if k != "loss"
    }
    assert again["loss"] == pytest.approx(best["validation"]["loss"], rel=1e-5)


@pytest.mark.parametrize("which", ["cls", "seq_crf"])
def test_a_moved_model_directory_gives_identical_predictions(which: str, request, tmp_path: Path) -> None:
    """Applying needs only the model directory: no training data, no meta file, no other path."""
    val, model = request.getfixturevalue(which)
    instances = _instances(val)
    expected = model.apply(instances, distribution=True)
    moved = tmp_path / "elsewhere"
    shutil.copytree(model.model_dir, moved)
    again = service.load_model(str(moved))
    assert again.apply(instances, distribution=True) == expected
    assert again.labels == model.labels and again.num_features == model.num_features


# --- batch independence ----------------------------------------------------------------------
def _assert_same_results(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x["label"] == y["label"]
        np.testing.assert_allclose(x["confidence"], y["confidence"], rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(x["distribution"], y["distribution"], rtol=2e-5, atol=1e-6)


def _check_batch_independence(model: service.LoadedModel, instances: list) -> None:
    together = model.apply(instances, distribution=True)
    one_by_one = [model.apply([x], distribution=True)[0] for x in instances]
    _assert_same_results(together, one_by_one)
    order = list(range(len(instances)))
    random.Random(1).shuffle(order)
    shuffled = model.apply([instances[i] for i in order], distribution=True)
    _assert_same_results([together[i] for i in order], shuffled)


def test_classification_results_do_not_depend_on_the_batch(cls) -> None:
    val, model = cls
    instances = _instances(val, 25)
    instances += [[[], 0.0, False], [["zzqx"] * 40, 3.5, True], [instances[0][0] * 6, -1.0, None]]
    assert len({len(x[0]) for x in instances}) > 8  # token lists of many lengths, empty included
    _check_batch_independence(model, instances)


@pytest.mark.parametrize("which", ["seq_crf", "seq_softmax"])
def test_sequence_results_do_not_depend_on_the_batch(which: str, request) -> None:
    fixture = request.getfixturevalue(which)
    model = fixture[1] if isinstance(fixture, tuple) else fixture
    sentences = _instances(_data_path(Path(model.metadata["training"]["meta_file"])), 20)
    sentences += [[], sentences[0][:1], sentences[1] + sentences[2] + sentences[3]]
    assert len({len(s) for s in sentences}) > 6
    _check_batch_independence(model, sentences)
    assert model.apply([[]]) == [{"label": [], "confidence": []}]


# --- probabilities ---------------------------------------------------------------------------
def test_classification_confidence_is_the_max_of_a_distribution(cls) -> None:
    val, model = cls
    for result in model.apply(_instances(val), distribution=True):
        dist = result["distribution"]
        assert len(dist) == len(model.labels)
        assert sum(dist) == pytest.approx(1.0, abs=1e-5)
        assert result["confidence"] == pytest.approx(max(dist), abs=1e-7)
        assert result["label"] == model.labels[int(np.argmax(dist))]
    without = model.apply(_instances(val, 3))
    assert all(set(r) == {"label", "confidence"} for r in without)


def test_sequence_softmax_confidence_is_the_max_of_each_distribution(seq_softmax) -> None:
    model = seq_softmax
    sentences = _instances(_data_path(Path(model.metadata["training"]["meta_file"])), 10)
    for sentence, result in zip(sentences, model.apply(sentences, distribution=True)):
        assert (
            len(result["label"]) == len(result["confidence"]) == len(result["distribution"]) == len(sentence)
        )
        for label, conf, dist in zip(result["label"], result["confidence"], result["distribution"]):
            assert sum(dist) == pytest.approx(1.0, abs=1e-5)
            assert conf == pytest.approx(max(dist), abs=1e-7)
            assert label == model.labels[int(np.argmax(dist))]


def test_crf_confidences_are_marginal_probabilities(seq_crf) -> None:
    val, model = seq_crf
    assert model.metadata["config"]["crf"] is True
    for result in model.apply(_instances(val), distribution=True):
        for label, conf, dist in zip(result["label"], result["confidence"], result["distribution"]):
            assert 0.0 <= conf <= 1.0
            assert sum(dist) == pytest.approx(1.0, abs=1e-4)
            assert conf == pytest.approx(dist[model.labels.index(label)], abs=1e-6)


# --- unseen values and bad instances ----------------------------------------------------------
def test_unseen_values_map_to_oov_and_apply(cls, seq_crf) -> None:
    _, classifier = cls
    encoded = encode_instances(classifier.codec, [[["neverseenword", "another"], 0.0, True]])
    assert encoded.lists[0].values.tolist() == [OOV_INDEX, OOV_INDEX]
    assert classifier.apply([[["neverseenword"], 1e6, False]])[0]["label"] in classifier.labels

    _, tagger = seq_crf
    sentence = [["Qwxyzzy", "", "Aa", "a"], ["blorft", "Aa", "a", ""]]
    encoded = encode_instances(tagger.codec, [sentence])
    assert encoded.nominal[:, 0].tolist() == [OOV_INDEX, OOV_INDEX]
    result = tagger.apply([sentence])[0]
    assert len(result["label"]) == 2 and set(result["label"]) <= set(tagger.labels)


def test_unseen_values_in_onehot_columns_do_not_crash(window) -> None:
    model = window
    vocab = model.codec.vocabs["label"]
    assert vocab.onehot
    instance = ["Nevertoken"] * 6 + ["NOT-A-TAG", "ALSO-NOT"] + ["Xx"] * 6 + ["zq"] * 12
    nominal = encode_instances(model.codec, [instance]).nominal[0]
    label_columns = [j for j, c in enumerate(model.codec.nominal) if c.emb_id == "label"]
    assert [int(nominal[j]) for j in label_columns] == [vocab.unknown_index] * 2
    token_columns = [j for j, c in enumerate(model.codec.nominal) if c.emb_id == "token"]
    assert {int(nominal[j]) for j in token_columns} == {OOV_INDEX}
    result = model.apply([instance], distribution=True)[0]
    assert result["label"] in model.labels
    assert sum(result["distribution"]) == pytest.approx(1.0, abs=1e-5)


def test_a_wrong_feature_count_names_the_instance(cls, seq_crf) -> None:
    _, model = cls
    good = [["word"], 0.0, True]
    with pytest.raises(DataLineError) as error:
        model.apply([good, good, [["word"], 0.0]])
    assert error.value.index == 2
    assert "wrong number of feature values" in error.value.message
    with pytest.raises(DataLineError) as error:
        model.apply([good, [["word"], "high", True]])
    assert error.value.index == 1
    assert error.value.feature == model.codec.column_names[1]

    _, tagger = seq_crf
    with pytest.raises(DataLineError) as error:
        tagger.apply([[["Abc", "", "Aa", "a"]], [["Abc", "", "Aa", "a"], ["x", "a"]]])
    assert error.value.index == 1 and "element 1" in error.value.message


def test_an_empty_request_gives_no_results(cls) -> None:
    assert cls[1].apply([]) == []


# --- refusing pickles --------------------------------------------------------------------------
class _Planted:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_pickled_weights_file_is_refused(cls, tmp_path: Path, writer: str) -> None:
    """Even with a matching digest in model.json, a weights file holding Python objects is never
    unpickled: loading fails with ModelError and the planted code does not run."""
    _, model = cls
    target = tmp_path / "model"
    shutil.copytree(model.model_dir, target)
    marker = tmp_path / "code-ran"
    payload = {"output.weight": _Planted(marker), "output.bias": torch.zeros(3)}
    if writer == "torch.save":
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        data = buffer.getvalue()
    else:
        data = pickle.dumps(payload)
    digest = hashlib.sha256(data).hexdigest()
    (target / f"weights-{digest[:16]}.pt").write_bytes(data)
    model_json = store.model_paths(target).model_json
    document = json.loads(model_json.read_text())
    document["weights"] = {"file": f"weights-{digest[:16]}.pt", "sha256": digest}
    model_json.write_text(json.dumps(document))
    with pytest.raises(ModelError):
        service.load_model(str(target))
    assert not marker.exists()
