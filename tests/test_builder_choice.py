"""Heuristics (values, provenance, overrides), the configuration record, and the module registry."""

from __future__ import annotations

import dataclasses
import json
import textwrap

import pytest
import torch

from lfengine.builder import ModelConfig, NetworkPlan, TaskModel, build_network, choose_config, resolve_module
from lfengine.builder.config import field_names
from lfengine.builder.encoders import SHAPE_FLAGS
from lfengine.builder.heuristics import RULES
from lfengine.builder.modules import BiLstmCrfTagger, MlpClassifier, TextCnn
from lfengine.builder.networks import AutoNetwork, Classifier, SequenceTagger
from lfengine.builder.registry import ModulePermission, allow_modules
from lfengine.data.batch import Batch, CharInfo, EmbeddingInfo, InputLayout
from lfengine.errors import ModelError, OptionError, UntrustedModuleError
from lfengine.evaluation.metrics import is_chunk_label_set
from lfengine.options import TrainOptions

POS = ("NOUN", "VERB", "ADJ")
CHUNKS = ("O", "PER|B", "PER|I", "LOC|B,PER|I")
TOKEN = {"tok": EmbeddingInfo("tok", 40, 8, "yes", False)}
NUMERIC = InputLayout(
    False, (), tuple(f"a{i}" for i in range(34)), (), {}, None, "classification", ("g", "b")
)
TEXT = InputLayout(False, (), ("len",), (("text", "tok"),), TOKEN, None, "classification", ("neg", "pos"))


def _seq(labels, chars: bool) -> InputLayout:
    char_info = CharInfo("tok", 20, 8) if chars else None
    return InputLayout(True, (("tok", "tok"),), (), (), TOKEN, char_info, "sequence", labels)


def _choose(layout: InputLayout, n_train: int = 300, **options):
    return choose_config(layout, TrainOptions(**options), n_train)


def test_every_setting_has_a_rule():
    assert set(RULES) == set(field_names())


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (CHUNKS, True),
        (("O", "MISC|B", "MISC|I"), True),
        (POS, False),
        (("O",), False),
        (("O", "PER|B", "NOUN"), False),
        (("B", "I", "O"), False),
    ],
)
def test_chunk_labels_are_recognised(labels, expected):
    assert is_chunk_label_set(labels) == expected  # the one rule the CRF and span F1 share


def test_tagger_defaults_follow_the_labels_and_the_data():
    chunk_config, provenance = _choose(_seq(CHUNKS, chars=True))
    assert chunk_config.crf and chunk_config.char_encoder and chunk_config.word_shape
    assert set(provenance.values()) == {"heuristic"} and set(provenance) == set(field_names())
    pos_config, _ = _choose(_seq(POS, chars=False))
    assert not pos_config.crf and not pos_config.char_encoder and not pos_config.word_shape
    sizes = [_choose(_seq(POS, False), n_train=n)[0].lstm_hidden for n in (100, 5000, 50000)]
    assert sizes == sorted(sizes) and 100 <= sizes[0] and sizes[-1] <= 200


def test_classifier_sizes_follow_the_input():
    numeric, _ = _choose(NUMERIC, n_train=351)
    assert numeric.hidden_size == 32 and numeric.hidden_layers == 1
    text, _ = _choose(TEXT, n_train=1000)
    assert text.hidden_size == (1 + 300) // 2  # one numeric + a 3x100 CNN
    assert 8 <= text.batch_size <= 64 and 1e-3 <= text.learning_rate <= 3e-3
    assert 50 <= text.max_epochs <= 100 and 3 <= text.es_patience <= 10


def test_a_text_cnn_classifier_feeds_the_labels_directly():
    """Kim (2014): CNN features -> label layer; other inputs keep the hidden layer that combines them."""
    text_only = InputLayout(False, (), (), (("text", "tok"),), TOKEN, None, "classification", ("neg", "pos"))
    assert _choose(text_only)[0].hidden_layers == 0
    assert _choose(text_only, ngram_layer="lstm")[0].hidden_layers == 1
    assert _choose(text_only, model={"list_encoder": "mean"})[0].hidden_layers == 1
    assert _choose(TEXT)[0].hidden_layers == 1  # a numeric column beside the text
    regression = InputLayout(False, (), (), (("text", "tok"),), TOKEN, None, "regression", ())
    assert _choose(regression)[0].hidden_layers == 1
    config, provenance = _choose(text_only, model={"hidden_layers": 1})
    assert config.hidden_layers == 1 and provenance["hidden_layers"] == "option"


def test_user_settings_win_and_are_marked_as_options():
    options = {
        "batch_size": 7,
        "learning_rate": 0.01,
        "ngram_layer": "lstm",
        "model": {"dropout": 0.3, "list_lstm_hidden": 20, "cnn_kernels": "2,3"},
    }
    config, provenance = _choose(TEXT, **options)
    assert (config.batch_size, config.learning_rate, config.list_encoder, config.dropout) == (
        7,
        0.01,
        "lstm",
        0.3,
    )
    assert config.cnn_kernels == (2, 3)
    assert config.hidden_size == 32  # recomputed for the smaller LSTM encoder: (1 + 40) // 2 -> at least 32
    chosen = {name for name, source in provenance.items() if source == "option"}
    expected = {"batch_size", "learning_rate", "list_encoder", "dropout", "list_lstm_hidden", "cnn_kernels"}
    assert chosen == expected


def test_unknown_model_setting_lists_the_known_ones():
    with pytest.raises(OptionError, match="unknown model setting.*hiden_size.*known:.*hidden_size"):
        _choose(TEXT, model={"hiden_size": 10})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 16, "model": {"batch_size": 32}}, "contradicts"),
        ({"model": {"dropout": "high"}}, "dropout must be a number"),
        ({"model": {"dropout": 1.0}}, r"dropout must be in \[0, 1\)"),
        ({"model": {"lstm_layers": 0}}, "lstm_layers must be between 1 and 64"),
        ({"model": {"crf": "yes"}}, "crf must be true or false"),
        ({"model": {"list_encoder": "gru"}}, "list_encoder must be one of"),
        ({"model": {"cnn_kernels": [3, 4.5]}}, "list of integers"),
        ({"model": {"crf": True}}, "sequence tagging only"),
    ],
)
def test_bad_settings_are_option_errors(options, message):
    with pytest.raises(OptionError, match=message):
        _choose(TEXT, **options)


@pytest.mark.parametrize("name", ["char_encoder", "word_shape"])
def test_spelling_settings_without_characters_are_refused(name):
    with pytest.raises(OptionError, match=f"{name} is on, but the data have no character column"):
        _choose(_seq(POS, chars=False), model={name: True})


def test_word_shape_adds_its_flags_to_the_tagger_input():
    layout = _seq(CHUNKS, chars=True)
    with_shape = build_network(NetworkPlan(layout, _choose(layout)[0], None))
    without = build_network(NetworkPlan(layout, _choose(layout, model={"word_shape": False})[0], None))
    assert with_shape.features.output_size == without.features.output_size + len(SHAPE_FLAGS)
    assert without.features.shape is None


def test_models_stored_before_word_shape_load_without_it():
    config, _ = _choose(_seq(CHUNKS, chars=True))
    stored = config.to_dict()
    del stored["word_shape"]
    assert ModelConfig.from_dict(stored).word_shape is False


def test_config_round_trips_through_json():
    config, _ = _choose(_seq(CHUNKS, chars=True), model={"cnn_kernels": [2, 5]})
    restored = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    stored = config.to_dict()
    with pytest.raises(ModelError, match="unknown keys: extra"):
        ModelConfig.from_dict({**stored, "extra": 1})
    del stored["crf"]
    with pytest.raises(ModelError, match="missing keys: crf"):
        ModelConfig.from_dict(stored)


def test_module_defaults_are_heuristics_the_user_can_override():
    config, provenance = _choose(TEXT, module="MlpClassifier")
    assert (config.list_encoder, config.hidden_layers) == ("mean", 2)
    assert provenance["list_encoder"] == "heuristic" and provenance["module"] == "option"
    config, provenance = _choose(TEXT, module="MlpClassifier", model={"hidden_layers": 1})
    assert config.hidden_layers == 1 and provenance["hidden_layers"] == "option"
    assert _choose(_seq(POS, False), module="BiLstmCrfTagger")[0].crf
    with pytest.raises(OptionError, match="always uses a CRF"):
        _choose(_seq(POS, False), module="BiLstmCrfTagger", model={"crf": False})
    with pytest.raises(OptionError, match="TextCnn needs classification"):
        _choose(_seq(POS, False), module="TextCnn")


def test_predefined_names_resolve():
    assert resolve_module(None) is AutoNetwork and resolve_module("auto") is AutoNetwork
    assert resolve_module("TextCnn") is TextCnn
    assert resolve_module("BiLstmCrfTagger") is BiLstmCrfTagger
    assert resolve_module("MlpClassifier") is MlpClassifier
    with pytest.raises(OptionError, match="unknown module 'Nope'.*TextCnn"):
        resolve_module("Nope")


def _text_batch() -> Batch:
    return Batch(
        nominal=torch.zeros(3, 0, dtype=torch.long),
        numeric=torch.tensor([[0.5], [-1.0], [0.0]]),
        lists=[torch.tensor([[3, 4, 5, 6], [7, 0, 0, 0], [0, 0, 0, 0]])],
        list_lengths=[torch.tensor([4, 1, 0])],
        targets=torch.tensor([0, 1, 1]),
    )


@pytest.mark.parametrize("module", ["TextCnn", "MlpClassifier", None])
def test_predefined_classifiers_train_and_predict(module):
    config, _ = _choose(TEXT, module=module, model={"cnn_channels": 4, "hidden_size": 6})
    torch.manual_seed(0)
    model = build_network(NetworkPlan(TEXT, config, {"tok": torch.randn(40, 8).numpy()}))
    assert isinstance(model, Classifier if module is None else resolve_module(module))
    batch = _text_batch()
    model.loss(batch).backward()
    prediction = model.eval().predict(batch)
    assert prediction.label_ids.shape == (3,)
    assert torch.allclose(prediction.distribution.sum(-1), torch.ones(3))


def test_bilstm_crf_tagger_is_a_tagger_with_a_crf():
    layout = _seq(POS, chars=False)
    config, _ = _choose(layout, module="BiLstmCrfTagger", model={"lstm_hidden": 4})
    model = build_network(NetworkPlan(layout, config, None))
    assert isinstance(model, SequenceTagger) and model.crf is not None


USER_MODULE = """
    import torch
    from torch import nn
    from lfengine.builder import FeatureEmbeddings, TaskModel

    class BagOfWords(TaskModel):
        config_defaults = {"learning_rate": 0.05}

        def __init__(self, layout, config, init=None):
            super().__init__(layout, config, init)
            self.emb_id = layout.lists[0][1]
            self.embeddings = FeatureEmbeddings(layout.embeddings, [self.emb_id], init, 0.0)
            self.output = nn.Linear(self.embeddings.dims(self.emb_id), layout.num_labels)

        def forward(self, batch):
            vectors = self.embeddings.lookup(self.emb_id, batch.lists[0]).sum(dim=1)
            return self.output(vectors)

    class NotAModel(nn.Module):
        pass

    not_a_class = 3
"""


def test_user_module_from_a_file(tmp_path):
    path = tmp_path / "my_modules.py"
    path.write_text(textwrap.dedent(USER_MODULE))
    name = f"{path}:BagOfWords"
    with allow_modules(ModulePermission.of([name])):
        cls = resolve_module(name)
        assert issubclass(cls, TaskModel) and cls.__name__ == "BagOfWords"
        config, provenance = _choose(TEXT, module=name)
        assert config.learning_rate == 0.05 and provenance["learning_rate"] == "heuristic"
        model = build_network(NetworkPlan(TEXT, config, None))
    batch = _text_batch()
    model.loss(batch).backward()
    assert model.predict(batch).confidence.shape == (3,)


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (":NotAModel", "must be a class that subclasses lfengine.builder.TaskModel"),
        (":not_a_class", "must be a class that subclasses"),
        (":Missing", "has no class 'Missing'"),
        ("", "name the class too"),
    ],
)
def test_bad_user_modules_are_option_errors(tmp_path, suffix, message):
    path = tmp_path / "my_modules.py"
    path.write_text(textwrap.dedent(USER_MODULE))
    with pytest.raises(OptionError, match=message), allow_modules(ModulePermission(any_module=True)):
        resolve_module(f"{path}{suffix}")


def test_user_module_file_missing_or_broken(tmp_path):
    with allow_modules(ModulePermission(any_module=True)):
        with pytest.raises(OptionError, match="module file not found"):
            resolve_module(f"{tmp_path / 'absent.py'}:Model")
        broken = tmp_path / "broken.py"
        broken.write_text("raise RuntimeError('boom')\n")
        with pytest.raises(OptionError, match="importing module file .* failed: RuntimeError: boom"):
            resolve_module(f"{broken}:Model")


def test_a_user_module_is_imported_only_with_the_callers_leave(tmp_path):
    """resolve_module is where every user file is imported: without a permission naming the
    file (or trust_module), nothing runs, whatever built the name."""
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.py"
    path.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    name = f"{path}:Model"
    for permission in (None, ModulePermission.of([f"{tmp_path / 'other.py'}:Model"])):
        with pytest.raises(UntrustedModuleError, match="would import \\(execute\\) that file"):
            if permission is None:
                resolve_module(name)
            else:
                with allow_modules(permission):  # the way training and loading reach it
                    build_network(NetworkPlan(TEXT, dataclasses.replace(_choose(TEXT)[0], module=name)))
        assert not marker.exists()
    with allow_modules(ModulePermission.of([name])), pytest.raises(OptionError, match="has no class"):
        resolve_module(name)  # allowed: the file runs (and names no class)
    assert marker.exists()
