"""Predefined modules: the layers they add (word shape, attention pooling), what they say about the
columns they read, how they refuse data they cannot use, and that each trains and reloads on the
shared file of its kind. Their accuracy is measured by bench/bench_accuracy.py --modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lfengine import service
from lfengine.builder.encoders import SHAPE_FLAGS, MaskedAttentionEncoder, WordShape
from lfengine.data.synthetic import write_classification_corpus
from lfengine.errors import OptionError
from lfengine.options import TrainOptions

ALPHABET = ("<PAD>", "<OOV>", *"aPrisUSAx-142,")


def _ids(word: str) -> list[int]:
    return [ALPHABET.index(ch) for ch in word]


def test_word_shape_flags_follow_the_characters() -> None:
    words = ["Paris", "USA", "x-1", "42", ",", "aris"]
    width = max(map(len, words)) + 2  # extra padding must not matter
    chars = torch.tensor([_ids(w) + [0] * (width - len(w)) for w in words])
    flags = WordShape(ALPHABET)(chars)
    got = {
        word: {name for name, on in zip(SHAPE_FLAGS, row.tolist(), strict=True) if on}
        for word, row in zip(words, flags, strict=True)
    }
    assert got == {
        "Paris": {"has_upper", "initial_upper", "has_lower"},
        "USA": {"has_upper", "all_upper", "initial_upper"},
        "x-1": {"has_lower", "has_digit", "has_punctuation", "has_hyphen"},
        "42": {"has_digit", "all_digit"},
        ",": {"has_punctuation", "single_char"},
        "aris": {"has_lower"},
    }
    assert WordShape(ALPHABET)(torch.zeros((2, 4), dtype=torch.long)).abs().sum() == 0  # padding


def test_attention_pooling_ignores_padding_and_empty_lists_give_zeros() -> None:
    torch.manual_seed(0)
    encoder = MaskedAttentionEncoder(6, 5).eval()
    inputs = torch.randn(3, 4, 6)
    lengths = torch.tensor([4, 2, 0])
    out = encoder(inputs, lengths)
    alone = encoder(inputs[1:2, :2], lengths[1:2])
    assert torch.allclose(out[1], alone[0], atol=1e-6)  # the same list without batch padding
    assert out.shape == (3, 10) and out[2].abs().sum() == 0


def test_text_modules_say_which_columns_they_ignore(tmp_path: Path) -> None:
    meta = write_classification_corpus(tmp_path, 60, seed=3)  # a text column plus numeric/bool columns
    for module in ("TextCnn", "BiLstmAttentionClassifier"):
        notes = service.describe(str(meta), TrainOptions(module=module))["notes"]
        assert any("reads the token-list column" in n for n in notes)
        assert any(n.startswith("ignores 2 column(s)") for n in notes), notes
    assert "notes" not in service.describe(str(meta), TrainOptions())  # the auto network reads all


def test_taggers_need_a_token_string_column(lf_pair) -> None:
    from lfengine.data.synthetic import LfAttribute

    records = [[[["a"], ["b"]], ["X", "Y"]], [[["b"]], ["Y"]]]
    meta = lf_pair([LfAttribute("A", "category")], records, is_sequence=True)
    for module in ("NerTagger", "PosTagger"):
        with pytest.raises(OptionError, match=f"{module} reads the characters of each token"):
            service.describe(str(meta), TrainOptions(module=module))


@pytest.mark.parametrize(
    ("module", "data", "expected"),
    [
        ("NerTagger", "seq-pos2", ["casing flags stay 0", "CRF over 9 labels"]),
        ("PosTagger", "seq-pos1", ["casing/shape flags", "softmax over"]),
        ("TextCnn", "class-ngram-sp1", ["cnn encoder"]),
        ("BiLstmAttentionClassifier", "class-ngram-sp1", ["attention encoder"]),
        ("MlpClassifier", "class-window-pos1", ["reads every LF column"]),
    ],
)
def test_module_trains_on_its_shared_file_and_reloads(
    module: str, data: str, expected: list[str], lfdata: Path, tmp_path: Path
) -> None:
    meta = lfdata / f"{data}.meta.json"
    options = TrainOptions(module=module, max_epochs=1, threads=1, device="cpu")
    described = service.describe(str(meta), options)
    for text in expected:
        assert any(text in note for note in described["notes"]), (text, described["notes"])
    result = service.train(str(meta), str(tmp_path / "model"), options)
    assert result["epochs"] == 1 and result["best"]
    loaded = service.load_model(str(tmp_path / "model"))
    assert loaded.describe()["architecture"]["tree"]["type"] == module
    report = loaded.evaluate(str(meta).replace(".meta.", ".data."))
    assert report["instances"] > 0
