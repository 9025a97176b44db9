"""Models on new documents: rows training never updated are not used, the OOV row is learned,
the validation split can be the file's tail, and evaluate scores known and unknown tokens apart."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from lfengine import service
from lfengine.data.batching import split_indices
from lfengine.data.synthetic import LfAttribute, write_lf
from lfengine.data.vocab import OOV_INDEX
from lfengine.evaluation import metrics
from lfengine.evaluation.metrics_text import format_report
from lfengine.options import TrainOptions
from lfengine.storage import store

COMMON = [f"w{i}" for i in range(12)]


def _corpus(folder: Path) -> Path:
    """Classification of one token: label ``a`` for even-numbered common words, ``b`` for odd;
    rare words (seen once) keep the OOV row busy; the last line holds ``valonly``, a word that
    occurs nowhere else, so a tail validation split of one line has it alone."""
    rng = random.Random(3)
    records = []
    for i in range(300):
        word = rng.choice(COMMON) if i % 5 else f"rare{i}"
        label = "a" if (word in COMMON and int(word[1:]) % 2 == 0) or i % 10 == 0 else "b"
        records.append([[word], label])
    records.append([["valonly"], "a"])
    attributes = [LfAttribute("A", "string", emb_id="token", emb_dims=8)]
    return write_lf(folder, "words", attributes, records, is_sequence=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("gen")
    meta = _corpus(folder)
    model_dir = folder / "model"
    options = TrainOptions(seed=1, valsize=1, valsplit="tail", max_epochs=4, threads=1, device="cpu")
    service.train(str(meta), str(model_dir), options)
    return meta, model_dir


def test_values_only_in_validation_or_at_application_get_the_oov_result(trained) -> None:
    meta, model_dir = trained
    model = service.load_model(str(model_dir))
    vocab = model.codec.vocabs["token"]
    assert "valonly" in vocab.itos  # the meta's vocabulary (and its index conventions) is kept
    assert vocab.stoi["valonly"] == OOV_INDEX
    assert vocab.stoi["w0"] != OOV_INDEX
    unseen, val_only, known = model.apply([["never-seen"], ["valonly"], ["w0"]], distribution=True)
    assert val_only["distribution"] == pytest.approx(unseen["distribution"])
    assert known["distribution"] != pytest.approx(unseen["distribution"])
    rows = model.describe()["vocabularies"][0]["rows"]
    # 12 common words and 60 rare ones are trained; valonly alone is mapped to OOV.
    assert rows == {"trained": 72, "pretrained": 0, "oov": 1}


def test_the_oov_row_is_trained_by_rare_word_replacement(trained, tmp_path: Path) -> None:
    """Same seed, same data, without replacing rare words: a row without gradient only drifts
    with Adam's weight decay, the same way in both runs; the OOV row learns in the first only."""
    meta, model_dir = trained
    options = TrainOptions(
        seed=1, valsize=1, valsplit="tail", max_epochs=4, threads=1, model={"unk_replace": 0.0}
    )
    service.train(str(meta), str(tmp_path / "plain"), options)

    def table(folder: Path) -> np.ndarray:
        weights = store.load_model_dir(folder)[1]
        return next(v for k, v in weights.items() if k.endswith("emb_token.weight")).numpy()

    learned, plain = table(model_dir), table(tmp_path / "plain")
    valonly = service.load_model(str(model_dir)).codec.vocabs["token"].itos.index("valonly")
    untouched = np.abs(learned[valonly] - plain[valonly]).sum()
    assert np.abs(learned[OOV_INDEX] - plain[OOV_INDEX]).sum() > 10 * untouched + 1e-2


def test_without_oov_untrained_the_old_behaviour_uses_every_row(tmp_path: Path) -> None:
    meta = _corpus(tmp_path)
    options = TrainOptions(
        seed=1, valsize=1, valsplit="tail", max_epochs=1, threads=1, model={"oov_untrained": False}
    )
    service.train(str(meta), str(tmp_path / "m"), options)
    model = service.load_model(str(tmp_path / "m"))
    assert model.codec.vocabs["token"].stoi["valonly"] != OOV_INDEX
    assert model.describe()["vocabularies"][0]["rows"] is None


def test_evaluate_splits_known_and_unknown_tokens(trained, tmp_path: Path) -> None:
    _, model_dir = trained
    test = tmp_path / "test.data.json"
    lines = ['[["w0"],"a"]', '[["w1"],"b"]', '[["w2"],"a"]', '[["valonly"],"a"]', '[["zzz"],"b"]']
    test.write_text("\n".join(lines) + "\n")
    report = service.evaluate(str(model_dir), str(test))
    oov = report["oov"]
    assert oov["known"]["count"] == 3 and oov["unknown"]["count"] == 2
    total = oov["known"]["accuracy"] * 3 + oov["unknown"]["accuracy"] * 2
    assert total == pytest.approx(report["accuracy"] * 5)
    assert "known vs unknown" in format_report(report)


def test_oov_report_span_scores_by_known_and_unknown_spans() -> None:
    labels = ["O", "PER|B", "PER|I"]
    # one sequence: "Ann Lee saw Bob" with Lee unknown; gold PER spans [0,2) and [3,4)
    gold = [1, 2, 0, 1]
    pred = [1, 0, 0, 1]  # misses Lee: predicts [0,1) and [3,4)
    unknown = [False, True, False, False]
    report = metrics.oov_report(gold, pred, unknown, labels, [0, 4])
    assert report["known"]["count"] == 3 and report["unknown"]["count"] == 1
    assert report["unknown"]["accuracy"] == 0.0 and report["known"]["accuracy"] == 1.0
    assert report["unknown"]["spans"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "gold": 1,
        "predicted": 0,
        "correct": 0,
    }
    assert report["known"]["spans"]["gold"] == 1 and report["known"]["spans"]["predicted"] == 2
    assert report["known"]["spans"]["correct"] == 1


def test_valsplit_tail_takes_the_last_lines_and_random_a_sample() -> None:
    train, val = split_indices(10, 3, seed=1, valsplit="tail")
    assert val.tolist() == [7, 8, 9] and train.tolist() == list(range(7))
    _, val = split_indices(100, 10, seed=1, valsplit="random")
    assert val.tolist() != list(range(90, 100))


def test_an_unknown_valsplit_is_refused() -> None:
    with pytest.raises(Exception, match="valsplit"):
        TrainOptions(valsplit="middle")
