"""The wide n-gram part (builder/wide.py, ``wide_ngrams``): a linear model over each token list's
words and hashed bigrams added to the classifier's logits. It must start as a no-op, ignore
padding, see word order through bigrams, and survive save, load, apply and eject."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from lfengine.builder.config import ModelConfig
from lfengine.builder.wide import WideNgrams
from lfengine.data.batch import EmbeddingInfo, InputLayout
from lfengine.data.synthetic import LfAttribute

LAYOUT = InputLayout(
    is_sequence=False,
    nominal=(),
    numeric=(),
    lists=(("text", "words"),),
    embeddings={"words": EmbeddingInfo("words", 12, 4, "yes", False)},
    chars=None,
    task="classification",
    labels=("neg", "pos"),
)


def _scores(wide: WideNgrams, rows: list[list[int]], pad: int = 0) -> torch.Tensor:
    width = max(len(r) for r in rows) + pad
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=torch.long)
    return wide([ids], [torch.tensor([len(r) for r in rows])])


def test_the_wide_part_starts_at_zero_and_ignores_padding() -> None:
    wide = WideNgrams(LAYOUT, 2, 2)
    assert torch.equal(_scores(wide, [[2, 3, 4], [5]]), torch.zeros(2, 2))  # untrained: changes nothing
    torch.manual_seed(0)
    for table in wide.tables:
        torch.nn.init.normal_(table.weight)
    alone = _scores(wide, [[2, 3, 4]])
    padded = _scores(wide, [[2, 3, 4], [5]], pad=3)
    assert torch.allclose(padded[0], alone[0])  # no bigram across the padding, no PAD row counted
    assert torch.equal(_scores(wide, [[]]), torch.zeros(1, 2))  # an empty list scores nothing


def test_bigrams_make_the_wide_part_see_word_order() -> None:
    torch.manual_seed(0)
    words = WideNgrams(LAYOUT, 2, 1)
    pairs = WideNgrams(LAYOUT, 2, 2)
    for wide in (words, pairs):
        torch.nn.init.normal_(wide.tables[0].weight)
    not_good, good_not = [[6, 7]], [[7, 6]]
    assert torch.allclose(_scores(words, not_good), _scores(words, good_not))  # a bag of words
    assert not torch.allclose(_scores(pairs, not_good), _scores(pairs, good_not))
    assert pairs.tables[0].num_embeddings == 12 + pairs.buckets


def test_models_stored_before_the_setting_have_no_wide_part() -> None:
    values = ModelConfig.from_dict({**_config().to_dict()}).to_dict()
    del values["wide_ngrams"]
    assert ModelConfig.from_dict(values).wide_ngrams == 0


def _config() -> ModelConfig:
    from lfengine.builder.heuristics import choose_config
    from lfengine.options import TrainOptions

    return choose_config(LAYOUT, TrainOptions(), n_train=100)[0]


def test_a_text_classifier_with_the_wide_part_saves_loads_applies_and_ejects(lf_pair, tmp_path: Path) -> None:
    from test_eject import _round_trip

    rng = random.Random(5)
    records = []
    for _ in range(120):
        label = rng.choice(["pos", "neg"])
        cue = ["good"] if label == "pos" else ["not", "good"]
        records.append([[[rng.choice(["a", "the", "film"]), *cue, rng.choice(["x", "y", "."])]], label])
    meta = lf_pair([LfAttribute("N", "string", emb_id="words")], records, base="wide")
    _round_trip(meta, tmp_path / "run", max_epochs=1, wide_ngrams=2)
    source = (tmp_path / "run" / "my_network.py").read_text(encoding="utf-8")
    assert "self.wide = WideNgrams(layout, 2, 2)" in source
    assert "scores = scores + self.wide(batch.lists, batch.list_lengths)" in source
    assert "'wide_ngrams': 2" in source or '"wide_ngrams": 2' in source


@pytest.mark.parametrize("value", [-1, 3])
def test_wide_ngrams_outside_0_to_2_is_refused(value: int) -> None:
    from lfengine.builder.config import coerce_value
    from lfengine.errors import OptionError

    with pytest.raises(OptionError, match="wide_ngrams must be between 0 and 2"):
        coerce_value("wide_ngrams", value)
