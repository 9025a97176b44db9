"""Auto-built networks on synthetic layouts: shapes, losses, padding invariance, frozen modes."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch

from lfengine.builder import NetworkPlan, build_network, choose_config, describe_model, render_tree
from lfengine.builder.embeddings import onehot_matrix
from lfengine.builder.networks import Classifier, Regressor, SequenceTagger
from lfengine.data.batch import IGNORE_INDEX, Batch, CharInfo, EmbeddingInfo, InputLayout
from lfengine.errors import ModelError
from lfengine.options import TrainOptions

SMALL = {
    "cnn_channels": 3,
    "list_lstm_hidden": 3,
    "hidden_size": 8,
    "lstm_hidden": 5,
    "char_dims": 3,
    "char_filters": 4,
}

CLASS_EMB = {
    "tok": EmbeddingInfo("tok", 20, 6, "yes", False),
    "onehot": EmbeddingInfo("onehot", 5, 4, "onehot", False),
    "pre": EmbeddingInfo("pre", 10, 5, "no", True),
    "map": EmbeddingInfo("map", 10, 5, "mapping", True),
    "unused": EmbeddingInfo("unused", 50, 7, "yes", False),
}
CLASS_LAYOUT = InputLayout(
    is_sequence=False,
    nominal=(("w", "tok"), ("w_prev", "tok"), ("shape", "onehot"), ("p", "pre"), ("m", "map")),
    numeric=("x1", "x2"),
    lists=(("text", "tok"), ("bag", "pre")),
    embeddings=CLASS_EMB,
    chars=None,
    task="classification",
    labels=("a", "b", "c"),
)
REGRESSION_LAYOUT = InputLayout(
    False, CLASS_LAYOUT.nominal, ("x1", "x2"), CLASS_LAYOUT.lists, CLASS_EMB, None, "regression", ()
)
SEQ_EMB = {
    "tok": EmbeddingInfo("tok", 30, 6, "yes", False),
    "suf": EmbeddingInfo("suf", 12, 3, "yes", False),
    "ng": EmbeddingInfo("ng", 15, 4, "no", True),
}
SEQ_LAYOUT = InputLayout(
    is_sequence=True,
    nominal=(("tok", "tok"), ("suf", "suf"), ("tok_next", "tok")),
    numeric=("cap",),
    lists=(("ngrams", "ng"),),
    embeddings=SEQ_EMB,
    chars=CharInfo("tok", 25, 6),
    task="sequence",
    labels=("O", "PER|B", "PER|I", "LOC|B", "LOC|I"),
)


def _init(embeddings: dict[str, EmbeddingInfo], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    init = {}
    for emb_id, info in embeddings.items():
        matrix = rng.normal(size=(info.vocab_size, info.dims)).astype(np.float32)
        matrix[0] = 0
        init[emb_id] = onehot_matrix(info.vocab_size) if info.mode == "onehot" else matrix
    return init


def _model(layout: InputLayout, **settings):
    options = TrainOptions(model={**SMALL, **settings})
    config, _ = choose_config(layout, options, n_train=200)
    torch.manual_seed(0)
    return build_network(NetworkPlan(layout, config, _init(layout.embeddings)))


def _class_item(rng: random.Random, layout: InputLayout, max_list: int = 7) -> dict:
    emb = layout.embeddings
    return {
        "nominal": [rng.randrange(emb[e].vocab_size) for _, e in layout.nominal],
        "numeric": [rng.uniform(-2, 2) for _ in layout.numeric],
        "lists": [
            [rng.randrange(1, emb[e].vocab_size) for _ in range(rng.randrange(max_list))]
            for _, e in layout.lists
        ],
        "target": rng.randrange(3),
    }


def _class_batch(items: list[dict], list_pad: int = 0, regression: bool = False) -> Batch:
    lists, lengths = [], []
    for j in range(len(items[0]["lists"])):
        width = max(len(item["lists"][j]) for item in items) + list_pad
        padded = [item["lists"][j] + [0] * (width - len(item["lists"][j])) for item in items]
        lists.append(torch.tensor(padded, dtype=torch.long).view(len(items), width))
        lengths.append(torch.tensor([len(item["lists"][j]) for item in items]))
    targets = [float(item["target"]) if regression else item["target"] for item in items]
    return Batch(
        nominal=torch.tensor([item["nominal"] for item in items]),
        numeric=torch.tensor([item["numeric"] for item in items], dtype=torch.float32),
        lists=lists,
        list_lengths=lengths,
        targets=torch.tensor(targets),
    )


def _seq_item(rng: random.Random, length: int) -> list[dict]:
    emb = SEQ_EMB
    return [
        {
            "nominal": [rng.randrange(emb[e].vocab_size) for _, e in SEQ_LAYOUT.nominal],
            "numeric": [float(rng.random() < 0.5)],
            "lists": [[rng.randrange(1, 15) for _ in range(rng.randrange(4))]],
            "chars": [rng.randrange(1, 25) for _ in range(rng.randrange(6))],
            "target": rng.randrange(5),
        }
        for _ in range(length)
    ]


def _padded(rows: list[list[dict]], get, width: int | None = None, dtype=torch.long) -> torch.Tensor:
    """(B, T[, width]) tensor of one token field; lists are right-padded with 0 to width."""
    if width is None:
        return torch.tensor([[get(tok) for tok in row] for row in rows], dtype=dtype)
    values = [[get(tok) + [0] * (width - len(get(tok))) for tok in row] for row in rows]
    return torch.tensor(values, dtype=dtype).view(len(rows), len(rows[0]), width)


def _seq_batch(seqs: list[list[dict]], t_pad: int = 0, l_pad: int = 0, w_pad: int = 0) -> Batch:
    steps = max(len(s) for s in seqs) + t_pad
    tokens = [tok for s in seqs for tok in s]
    width = max([len(tok["lists"][0]) for tok in tokens] + [0]) + l_pad
    chars = max([len(tok["chars"]) for tok in tokens] + [0]) + w_pad
    blank = {"nominal": [0, 0, 0], "numeric": [0.0], "lists": [[]], "chars": [], "target": IGNORE_INDEX}
    rows = [s + [blank] * (steps - len(s)) for s in seqs]
    size = len(seqs)
    return Batch(
        nominal=_padded(rows, lambda tok: tok["nominal"]).view(size, steps, 3),
        numeric=_padded(rows, lambda tok: tok["numeric"], dtype=torch.float32).view(size, steps, 1),
        lists=[_padded(rows, lambda tok: tok["lists"][0], width)],
        list_lengths=[_padded(rows, lambda tok: len(tok["lists"][0])).view(size, steps)],
        chars=_padded(rows, lambda tok: tok["chars"], chars),
        lengths=torch.tensor([len(s) for s in seqs]),
        targets=_padded(rows, lambda tok: tok["target"]).view(size, steps),
    )


def test_classifier_forward_loss_backward():
    model = _model(CLASS_LAYOUT)
    assert isinstance(model, Classifier)
    rng = random.Random(1)
    batch = _class_batch([_class_item(rng, CLASS_LAYOUT) for _ in range(6)])
    assert model(batch).shape == (6, 3)
    loss = model.loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    tables = model.features.embeddings.tables
    assert tables["emb_tok"].weight.grad is not None
    assert tables["emb_pre"].weight.grad is None and tables["emb_onehot"].weight.grad is None
    assert "emb_unused" not in tables  # only tables that some column uses are built


def test_frozen_modes_keep_their_weights_after_an_optimizer_step():
    model = _model(CLASS_LAYOUT)
    embeddings = model.features.embeddings
    before = {k: p.detach().clone() for k, p in model.state_dict().items()}
    optimizer = model.make_optimizer()
    rng = random.Random(2)
    model.loss(_class_batch([_class_item(rng, CLASS_LAYOUT) for _ in range(8)])).backward()
    optimizer.step()
    after = model.state_dict()
    for key in ("emb_pre", "emb_onehot", "emb_map"):
        name = f"features.embeddings.tables.{key}.weight"
        assert torch.equal(before[name], after[name]), key
    assert not torch.equal(
        before["features.embeddings.tables.emb_tok.weight"],
        after["features.embeddings.tables.emb_tok.weight"],
    )
    assert not torch.equal(
        before["features.embeddings.mappings.emb_map.weight"],
        after["features.embeddings.mappings.emb_map.weight"],
    )
    assert torch.equal(embeddings.tables["emb_tok"].weight[0], torch.zeros(6))  # PAD stays zero


def test_embedding_tables_start_from_init_and_modes():
    init = _init(CLASS_EMB)
    model = _model(CLASS_LAYOUT)
    tables, mappings = model.features.embeddings.tables, model.features.embeddings.mappings
    assert np.array_equal(tables["emb_pre"].weight.detach().numpy(), init["pre"])
    assert (
        torch.equal(tables["emb_onehot"].weight[1:], torch.eye(4))
        and tables["emb_onehot"].weight[0].abs().sum() == 0
    )
    assert torch.equal(mappings["emb_map"].weight, torch.eye(5))
    config = model.config
    with pytest.raises(ModelError, match="shape"):
        build_network(NetworkPlan(CLASS_LAYOUT, config, {**init, "tok": np.zeros((20, 7), dtype=np.float32)}))
    with pytest.raises(ModelError, match="pretrained"):
        build_network(NetworkPlan(CLASS_LAYOUT, config, {k: v for k, v in init.items() if k != "pre"}))


@pytest.mark.parametrize("encoder", ["cnn", "lstm", "mean"])
def test_classification_result_independent_of_padding_and_batch(encoder):
    model = _model(CLASS_LAYOUT, list_encoder=encoder).eval()
    rng = random.Random(3)
    items = [_class_item(rng, CLASS_LAYOUT, max_list=12) for _ in range(5)]
    items[2]["lists"] = [[4, 5], []]  # short and empty lists
    together = model(_class_batch(items, list_pad=4))
    for i, item in enumerate(items):
        alone = model(_class_batch([item]))
        assert torch.allclose(alone[0], together[i], atol=1e-5), i


def test_classification_prediction_is_a_distribution():
    model = _model(CLASS_LAYOUT).eval()
    rng = random.Random(4)
    with torch.inference_mode():
        prediction = model.predict(_class_batch([_class_item(rng, CLASS_LAYOUT) for _ in range(4)]))
    assert prediction.label_ids.shape == (4,) and prediction.label_ids.dtype == torch.long
    assert torch.allclose(prediction.distribution.sum(-1), torch.ones(4))
    assert torch.equal(prediction.confidence, prediction.distribution.max(-1).values)
    assert torch.equal(prediction.label_ids, prediction.distribution.argmax(-1))


def test_regressor_outputs_one_value_per_instance():
    model = _model(REGRESSION_LAYOUT)
    assert isinstance(model, Regressor)
    rng = random.Random(5)
    batch = _class_batch([_class_item(rng, REGRESSION_LAYOUT) for _ in range(5)], regression=True)
    assert model(batch).shape == (5,)
    loss = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    prediction = model.eval().predict(batch)
    assert prediction.values.shape == (5,) and prediction.label_ids is None


@pytest.mark.parametrize("crf", [True, False])
def test_tagger_forward_loss_backward(crf):
    model = _model(SEQ_LAYOUT, crf=crf)
    assert isinstance(model, SequenceTagger) and (model.crf is not None) == crf
    assert model.features.chars is not None  # char CNN on by default when the data have chars
    rng = random.Random(6)
    batch = _seq_batch([_seq_item(rng, n) for n in (4, 1, 7)])
    assert model(batch).shape == (3, 7, 5)
    loss = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.features.chars.embedding.weight.grad is not None
    prediction = model.eval().predict(batch)
    assert prediction.label_ids.shape == (3, 7)
    assert (prediction.label_ids[1, 1:] == IGNORE_INDEX).all() and (prediction.confidence[1, 1:] == 0).all()
    real = batch.mask
    assert ((prediction.confidence[real] > 0) & (prediction.confidence[real] <= 1)).all()
    sums = prediction.distribution[real].sum(-1)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)
    chosen = prediction.distribution.gather(2, prediction.label_ids.clamp(min=0).unsqueeze(2)).squeeze(2)
    assert torch.allclose(chosen[real], prediction.confidence[real])


@pytest.mark.parametrize("crf", [True, False])
def test_tagging_result_independent_of_padding_and_batch(crf):
    model = _model(SEQ_LAYOUT, crf=crf).eval()
    rng = random.Random(7)
    seqs = [_seq_item(rng, n) for n in (3, 9, 1, 5)]
    with torch.inference_mode():
        together_batch = _seq_batch(seqs, t_pad=3, l_pad=2, w_pad=4)
        together = model(together_batch)
        together_pred = model.predict(together_batch)
        for i, seq in enumerate(seqs):
            alone_batch = _seq_batch([seq])
            alone = model(alone_batch)
            n = len(seq)
            # float32 arithmetic of another batch shape rounds differently: relative tolerances
            torch.testing.assert_close(
                alone[0], together[i, :n], rtol=1e-4, atol=1e-6, msg=lambda m, i=i: f"sequence {i}: {m}"
            )
            alone_pred = model.predict(alone_batch)
            assert torch.equal(alone_pred.label_ids[0], together_pred.label_ids[i, :n])
            torch.testing.assert_close(
                alone_pred.confidence[0], together_pred.confidence[i, :n], rtol=2e-5, atol=1e-6
            )


def test_empty_sequences_do_not_crash():
    model = _model(SEQ_LAYOUT, crf=True)
    rng = random.Random(8)
    batch = _seq_batch([[], _seq_item(rng, 3)])
    loss = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    prediction = model.eval().predict(batch)
    assert (prediction.label_ids[0] == IGNORE_INDEX).all() and prediction.lengths.tolist() == [0, 3]
    only_empty = _seq_batch([[], []])
    assert model(only_empty).shape == (2, 0, 5)
    assert model.predict(only_empty).label_ids.shape == (2, 0)
    assert model.loss(only_empty) == 0


@pytest.mark.parametrize("layout", [CLASS_LAYOUT, SEQ_LAYOUT], ids=["classification", "sequence"])
def test_rebuilt_model_loads_the_stored_weights(layout):
    model = _model(layout).eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    rebuilt = build_network(NetworkPlan(layout, model.config, None))
    rebuilt.load_state_dict(torch.load(buffer, weights_only=True))
    rebuilt.eval()
    rng = random.Random(9)
    batch = (
        _seq_batch([_seq_item(rng, 4)]) if layout.is_sequence else _class_batch([_class_item(rng, layout)])
    )
    assert torch.equal(model(batch), rebuilt(batch))


def test_describe_counts_every_parameter_once_and_marks_frozen_tables():
    model = _model(CLASS_LAYOUT)
    tree = describe_model(model)
    assert tree["type"] == "Classifier" and tree["output"] == 3
    assert tree["parameters"] == sum(p.numel() for p in model.parameters())
    assert tree["trainable_parameters"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert tree["trainable"] == "partial"
    text = render_tree(tree)
    assert text.count("'tok' (train=yes): Embedding [20 x 6]") == 1  # shared by 3 columns, shown once
    pre_line = next(line for line in text.splitlines() if "'pre'" in line and "mapping" not in line)
    assert "(frozen)" in pre_line and "50 params" in pre_line
    assert "list 'text'" in text and "list 'bag'" in text


def test_describe_shows_a_module_used_twice_once():
    model = _model(CLASS_LAYOUT)
    model.features.alias = model.output  # the same layer reachable under a second path
    tree = describe_model(model)
    assert tree["parameters"] == sum(p.numel() for p in model.parameters())
    alias = next(child for child in tree["children"][0]["children"] if child["name"] == "alias")
    output = next(child for child in tree["children"] if child["name"] == "output")
    assert alias["parameters"] == 8 * 3 + 3
    assert output["shared_with"] == "features.alias"
    assert "shared, see features.alias" in render_tree(tree)
