"""evaluate on held-out documents with a gold label the training data never had: the label is
counted as an error (the model cannot predict it) and reported with its count, instead of the
file being refused. Real LF data (window POS classification, lower-cased NER chunks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import lfengine

from lfengine import service
from lfengine.evaluation import metrics
from lfengine.evaluation.metrics_text import format_report
from lfengine.options import TrainOptions


def _lines(path: Path) -> list[list]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path: Path, records: list[list]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def window_model(lfdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("unseen") / "window"
    options = TrainOptions(seed=1, max_epochs=1, threads=1, device="cpu")
    service.train(str(lfdata / "class-window-pos1.meta.json"), str(model_dir), options)
    return model_dir


def test_an_unseen_gold_label_is_an_error_with_its_count(
    window_model: Path, lfdata: Path, tmp_path: Path
) -> None:
    records = _lines(lfdata / "class-window-pos1.data.json")[-60:]
    plain = _write(tmp_path / "plain.data.json", records)
    relabelled = [
        [features, "NEWTAG" if i % 7 == 0 else label] for i, (features, label) in enumerate(records)
    ]
    changed = sum(1 for i in range(len(records)) if i % 7 == 0)
    with_new = _write(tmp_path / "new.data.json", relabelled)

    model = service.load_model(str(window_model))
    base, _, base_out = model.evaluation(str(plain))
    report, _, out = model.evaluation(str(with_new))
    assert base["unseen_labels"] == {"count": 0, "labels": {}}
    assert report["unseen_labels"] == {"count": changed, "labels": {"NEWTAG": changed}}
    # The predictions do not depend on the gold labels; every relabelled line is now wrong.
    assert out.label_ids.tolist() == base_out.label_ids.tolist()
    gold = [model.labels.index(label) for _, label in records]
    correct_kept = sum(
        1 for i, (g, p) in enumerate(zip(gold, base_out.label_ids.tolist())) if i % 7 and g == p
    )
    assert report["accuracy"] == pytest.approx(correct_kept / len(records))
    assert report["per_label"]["NEWTAG"]["support"] == changed
    assert report["per_label"]["NEWTAG"]["predicted"] == 0
    assert report["confusion"]["labels"][-1] == "NEWTAG"
    assert sum(report["confusion"]["matrix"][-1]) == changed
    assert "unseen in training (NEWTAG 9): counted as errors" in format_report(report)


def test_the_command_line_reports_unseen_chunk_labels(lfdata: Path, tmp_path: Path) -> None:
    """Sequence tagging with chunk labels: an unseen chunk type is a gold span the model misses;
    an unseen label that is no chunk label reads as outside for the spans. The text table, --json
    and the predictions file all carry it; the process exits 0."""
    model_dir = tmp_path / "ner"
    train = lfengine(
        "train", str(lfdata / "seq-pos2.meta.json"), str(model_dir), "--max-epochs", "1", "--threads", "1",
        "--device", "cpu", "-q",
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    records = _lines(lfdata / "seq-pos2.data.json")[-10:]
    outside = [
        (s, t) for s, (_, labels) in enumerate(records) for t, label in enumerate(labels) if label == "O"
    ]
    (s1, t1), (s2, t2) = outside[0], outside[-1]
    records[s1][1][t1] = "EVENT|B"
    records[s2][1][t2] = "X"
    test = _write(tmp_path / "test.data.json", records)

    proc = lfengine("evaluate", str(model_dir), str(test), "--json", "--predictions", str(tmp_path / "p.tsv"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["unseen_labels"] == {"count": 2, "labels": {"EVENT|B": 1, "X": 1}}
    spans = report["spans"]
    assert "EVENT" in spans["per_type"] and spans["per_type"]["EVENT"] == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "gold": 1, "predicted": 0, "correct": 0,
    }  # fmt: skip
    assert "X" not in spans["per_type"]
    assert report["oov"]["known"]["count"] + report["oov"]["unknown"]["count"] == report["instances"]
    written = (tmp_path / "p.tsv").read_text(encoding="utf-8").split("\n")
    assert sum(1 for line in written if line.split("\t")[1:2] == ["EVENT|B"]) == 1

    text = lfengine("evaluate", str(model_dir), str(test))
    assert text.returncode == 0, text.stderr
    assert "2 tokens with a gold label unseen in training (EVENT|B 1, X 1): counted as errors" in text.stdout


def test_span_labels_read_unseen_non_chunk_labels_as_outside() -> None:
    labels = ["O", "PER|B", "PER|I", "MISC|B", "X"]
    assert metrics.span_labels(labels, 3) == ["O", "PER|B", "PER|I", "MISC|B", "O"]
    assert metrics.span_labels(["NOUN", "VERB", "X"], 2) is None
    report = metrics.sequence_report([[1, 2, 4, 3]], [[1, 2, 0, 0]], labels, 3)
    assert report["spans"]["overall"] == {
        "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "gold": 2, "predicted": 1, "correct": 1,
    }  # fmt: skip
