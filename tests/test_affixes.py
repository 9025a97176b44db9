"""Hashed prefix/suffix embeddings: the same affix gets the same row in any word, the lengths a
word lacks and padding add nothing, and the stored model predicts the same after loading."""

from __future__ import annotations

import torch

from lfengine import service
from lfengine.builder.affixes import AffixEmbeddings
from lfengine.data.synthetic import write_sequence_corpus
from lfengine.options import TrainOptions

ALPHABET = ["", "<oov>", *"abcdeijklmnorsvwz"]


def _chars(words: list[str], width: int = 24) -> torch.Tensor:
    rows = [[ALPHABET.index(ch) for ch in word] + [0] * (width - len(word)) for word in words]
    return torch.tensor(rows)


def test_shared_affixes_share_rows_and_missing_lengths_are_masked():
    module = AffixEmbeddings(4)
    ids, present = module.affix_ids(_chars(["kowalski", "wilski", "ab", ""]))
    # ids: (words, lengths 1-4, prefix/suffix)
    assert torch.equal(ids[0, :, 1], ids[1, :, 1])  # -i, -ki, -ski, -lski
    assert not torch.equal(ids[0, 1:, 0], ids[1, 1:, 0])  # ko-, kow- vs wi-, wil-
    assert ids[0, 0, 0] != ids[0, 0, 1]  # k- as a prefix is not -i as a suffix
    assert present.tolist()[2:] == [[True, True, False, False], [False] * 4]


def test_the_output_sums_the_rows_of_the_present_affixes_and_ignores_padding_width():
    module = AffixEmbeddings(3)
    with torch.no_grad():
        module.table.weight.normal_()
    narrow, wide = module(_chars(["ab", "kowalski", ""], 8)), module(_chars(["ab", "kowalski", ""], 30))
    torch.testing.assert_close(narrow, wide)
    ids, _ = module.affix_ids(_chars(["ab"]))
    table = module.table.weight
    expected = torch.cat([table[ids[0, :2, 0]].sum(0), table[ids[0, :2, 1]].sum(0)])
    torch.testing.assert_close(narrow[0], expected)
    assert not narrow[2].any()


def test_a_tagger_with_affixes_trains_stores_and_predicts_the_same(tmp_path):
    meta = write_sequence_corpus(tmp_path / "data", 40, seed=3)
    model_dir = tmp_path / "m"
    options = TrainOptions(max_epochs=2, threads=1, device="cpu", model={"affix_dims": 8})
    service.train(str(meta), str(model_dir), options)
    model = service.load_model(str(model_dir))
    table = model.predictor.model.features.affixes.table.weight
    assert table.abs().sum() > 0 and (table.abs().sum(1) > 0).sum() < 1000  # only seen affixes moved
    sentences = [[["Zorkel", "", "Aa", "a"], ["said", "Aa", "a", ""]], [["the", "", "a", ""]]]
    first = model.apply(sentences, distribution=True)
    assert service.load_model(str(model_dir)).apply(sentences, distribution=True) == first
