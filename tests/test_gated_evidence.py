"""The text network's gated evidence (builder/gated_evidence.py): it starts as the linear model's
own sum, reads out-of-fold weights while training and the full fit otherwise, learns from
frequent words a rule (negation) that it then applies to words the linear model has seen only
without it, and is stored, described and loaded with the model."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from lfengine import cli, service
from lfengine.builder.gated_evidence import REACH
from lfengine.builder.heuristics import choose_config
from lfengine.builder.linear_text import FOLDS
from lfengine.builder.networks import Classifier
from lfengine.data.batching import collate
from lfengine.data.codec import build_codec
from lfengine.data.meta import read_meta
from lfengine.data.reader import encode_instances, read_data
from lfengine.data.synthetic import LfAttribute, write_lf
from lfengine.options import TrainOptions
from lfengine.storage import store


@pytest.fixture(scope="module")
def text(lfdata: Path):
    """class-ngram-sp1's first 800 sentences, encoded, and a text classifier for them."""
    spec = read_meta(lfdata / "class-ngram-sp1.meta.json")
    codec, _ = build_codec(spec, embs=None, maxlens=None, seed=1)
    head = read_data(codec, spec.data_path()).data.subset(np.arange(800))
    layout = codec.layout()
    config = choose_config(layout, TrainOptions(), len(head))[0]
    assert config.gated_evidence  # on by default for text
    torch.manual_seed(1)
    model = Classifier(layout, config)
    model.fit_before_training(head)
    return head, model


def test_the_gate_starts_as_the_linear_models_sum(text) -> None:
    """Every gate is 1 before training: the gated scores are the linear model's, for each sentence
    whose words and word pairs occur once in it (the linear features are binary)."""
    head, model = text
    batch = collate(head, np.arange(200))
    ids = batch.lists[0]
    once = [
        i
        for i in range(batch.size)
        if len(set(words := ids[i, : batch.list_lengths[0][i]].tolist())) == len(words)
    ]
    assert len(once) > 50
    with torch.no_grad():
        gated = model.eval().gate(batch, model.features.embeddings, model.linear)
        linear = model.linear.scores(batch)
    assert torch.allclose(gated[once], linear[once], atol=1e-4)
    assert (gated[once] - model.linear.bias).abs().max() > 1  # not two sums of nothing


def test_training_items_read_the_fit_that_left_them_out(text) -> None:
    """A word of one training sentence only weighs something in the full fit, and nothing in the
    fit that left that sentence's block out: while training, that is the weight the sentence reads."""
    head, model = text
    linear = model.linear
    assert linear.fold_weights is not None and linear.fold_weights.shape == (FOLDS, *linear.weights.shape)
    assert "fold_weights" not in "".join(model.state_dict())  # refitted on resume, never stored
    ids = torch.from_numpy(np.concatenate([head.lists[0].values]))
    counts = torch.bincount(ids)
    item = next(i for i in range(len(head)) if (counts[_words(head, i)] == 1).any())
    single = int(_words(head, item)[counts[_words(head, item)] == 1][0])
    rows, known = linear.lookup(*_unigram(linear, single))
    assert bool(known) and linear.weights[rows].abs().sum() > 0
    fold = int(linear.folds_of(torch.tensor([item])))
    assert fold == item * FOLDS // len(head)
    assert linear.fold_weights[fold, rows].abs().sum() == 0
    others = [k for k in range(FOLDS) if k != fold]
    assert (linear.fold_weights[others, rows].abs().sum(dim=-1) > 0).all()

    batch = collate(head, np.array([item]))
    with torch.no_grad():
        training = model.train().gate(batch, model.features.embeddings, linear)
        applying = model.eval().gate(batch, model.features.embeddings, linear)
    assert not torch.allclose(training, applying)


def _words(data, item: int) -> torch.Tensor:
    ragged = data.lists[0]
    return torch.from_numpy(ragged.values[ragged.offsets[item] : ragged.offsets[item + 1]]).long()


def _unigram(linear, word: int) -> tuple[torch.Tensor, torch.Tensor]:
    from lfengine.builder.sparse_weights import salted

    return salted(torch.tensor([word]), 1), torch.tensor([True])


def _negation_corpus(directory: Path) -> tuple[Path, list[list], list[str]]:
    """Sentences of filler words and one polarity word, or "not" + the word with the label turned
    round. Each word of group A appears three times plainly and once after "not" (a pair seen
    once: its weight is the fold's that never saw it), each of group B three times plainly; the
    test set is B's words after "not", which no training sentence shows."""
    rng = random.Random(7)
    filler = [f"f{i}" for i in range(40)]
    polar = {label: [f"{label[0]}{i}" for i in range(200)] for label in ("pos", "neg")}
    other = {"pos": "neg", "neg": "pos"}

    def sentence(word: str, negated: bool) -> list[str]:
        middle = ["not", word] if negated else [word]
        return rng.sample(filler, 2) + middle + rng.sample(filler, 2)

    records, test, gold = [], [], []
    for label, words in polar.items():
        for i, word in enumerate(words):
            group_a = i < 150
            for negated in (False, False, False, True) if group_a else (False, False, False):
                records.append([[sentence(word, negated)], other[label] if negated else label])
            if not group_a:
                test.append([sentence(word, True)])
                gold.append(other[label])
    rng.shuffle(records)
    attributes = [LfAttribute("N", "string", emb_id="token", maxlen=0)]
    return write_lf(directory, "negation", attributes, records, is_sequence=False), test, gold


def _network_scores(model_dir: Path, instances: list, gold: list[str]) -> dict[str, float]:
    """On ``instances`` (filler, filler, "not", word, filler, filler): the accuracy of the network's
    own scores, of the gated linear model and of the linear model alone, and the mean gate at the
    word and elsewhere."""
    loaded = service.load_model(str(model_dir))
    network, codec = loaded.predictor.model.eval(), loaded.codec
    batch = collate(encode_instances(codec, instances), np.arange(len(instances)))
    labels, truth = np.array(codec.labels), np.array(gold)
    with torch.no_grad():
        scores = {
            "network": float(np.mean(labels[network(batch).argmax(-1).numpy()] == truth)),
            "gated": float(np.mean(labels[network.gated_scores(batch).argmax(-1).numpy()] == truth))
            if network.gate is not None
            else 0.0,
            "linear": float(np.mean(labels[network.linear.scores(batch).argmax(-1).numpy()] == truth)),
        }
        if network.gate is not None:
            vectors = network.features.embeddings.lookup("token", batch.lists[0].long()).transpose(1, 2)
            gate = 1 + REACH * torch.tanh(network.gate.gates[0](vectors).squeeze(1))
            scores["gate at the word"] = float(gate[:, 3].mean())
            scores["gate elsewhere"] = float(gate[:, [0, 1, 4, 5]].mean())
    return scores


def test_the_gate_learns_to_turn_evidence_round_after_not(tmp_path: Path) -> None:
    """Trained on 300 words seen once each after "not", the gate turns round the evidence of the
    word after "not", and so reads the words seen only without it the right way round, where the
    linear model, which knows the word but not the pair, cannot."""
    meta, test, gold = _negation_corpus(tmp_path)
    model_dir = tmp_path / "gated"
    args = ["train", str(meta), str(model_dir), "--max-epochs", "6", "--valsize", "0", "--threads", "1"]
    assert cli.main([*args, "-q"]) == 0
    scores = _network_scores(model_dir, test, gold)
    assert scores["gate at the word"] < 0 < 0.5 < scores["gate elsewhere"], scores
    assert scores["linear"] < 0.2  # the word's own weight points the wrong way
    assert scores["gated"] > 0.8, scores


def test_the_gate_is_stored_described_and_off_on_request(text, tmp_path: Path, lfdata: Path) -> None:
    head, model = text
    meta = str(lfdata / "class-ngram-sp1.meta.json")
    model_dir = tmp_path / "model"
    args = ["train", meta, str(model_dir), "--max-epochs", "1", "--threads", "1", "-q"]
    assert cli.main(args) == 0
    weights = torch.load(store.committed_file(model_dir, "weights"), weights_only=True)
    assert {k for k in weights if k.startswith("gate.")} == {"gate.gates.0.weight", "gate.gates.0.bias"}
    described = service.load_model(str(model_dir)).describe()["architecture"]["text"]
    assert "word-pair weights, each times a gate in -1..3" in described
    layout, config = model.layout, model.config
    assert Classifier(layout, dataclasses.replace(config, gated_evidence=False)).gate is None
