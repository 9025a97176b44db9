"""Metrics: hand-computed cases, GATE's chunk decoding rules, and the real chunking data seq-pos2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lfengine.evaluation.metrics import (
    Span,
    classification_report,
    decode_spans,
    flatten_sequences,
    is_chunk_label_set,
    regression_report,
    sequence_report,
    span_report,
)
from lfengine.evaluation.metrics_text import format_report

LFDATA = Path(__file__).resolve().parent.parent.parent / "shared" / "lfdata"


def read_lf(name: str) -> tuple[list[str], list]:
    """Labels in index order (lf-format.md §8.5) and the targets of every line."""
    meta_path = LFDATA / f"{name}.meta.json"
    if not meta_path.exists():
        pytest.skip(f"real LF data not found at {LFDATA}")
    counts = json.loads(meta_path.read_text(encoding="utf-8"))["targetStats"]["stringCounts"]
    labels = sorted(counts, key=lambda label: (-counts[label], label))
    with open(LFDATA / f"{name}.data.json", encoding="utf-8") as handle:
        targets = [json.loads(line)[1] for line in handle if line.strip()]
    return labels, targets


def strict_json(report: dict) -> dict:
    return json.loads(json.dumps(report, allow_nan=False))


# --- classification ---------------------------------------------------------------------------


def test_classification_report_hand_computed():
    report = classification_report([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 0, 2], ["a", "b", "c"])
    assert report["instances"] == 6
    assert report["accuracy"] == pytest.approx(4 / 6)
    a, b, c = (report["per_label"][x] for x in "abc")
    assert (a["precision"], a["recall"], a["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert (b["precision"], b["recall"], b["f1"]) == pytest.approx((2 / 3, 1.0, 0.8))
    assert (c["precision"], c["recall"], c["f1"]) == pytest.approx((1.0, 0.5, 2 / 3))
    assert (a["support"], b["support"], c["support"]) == (2, 2, 2)
    assert (a["predicted"], b["predicted"], c["predicted"]) == (2, 3, 1)
    assert report["macro"]["precision"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert report["macro"]["recall"] == pytest.approx(2 / 3)
    assert report["macro"]["f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert report["micro"] == pytest.approx({"precision": 4 / 6, "recall": 4 / 6, "f1": 4 / 6})
    assert strict_json(report) == report


def test_undefined_scores_are_zero_and_absent_labels_leave_the_macro_average():
    report = classification_report(np.array([0, 1]), np.array([0, 0]), ["a", "b", "c", "d"])
    b, d = report["per_label"]["b"], report["per_label"]["d"]
    assert b == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0}
    assert d == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 0}
    # macro over a (f1 2/3) and b (f1 0) only: c and d occur nowhere
    assert report["macro"]["f1"] == pytest.approx(1 / 3)
    assert report["macro"]["recall"] == pytest.approx(0.5)


def test_empty_classification_report_is_strict_json():
    report = classification_report([], [], ["a", "b"])
    assert report["accuracy"] == 0.0 and report["instances"] == 0
    assert report["macro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert strict_json(report) == report


@pytest.mark.parametrize(
    "gold, pred, labels, message",
    [
        ([0, 1], [0], ["a", "b"], "gold has 2"),
        ([0, 2], [0, 1], ["a", "b"], "label index 2"),
        ([0, -1], [0, 1], ["a", "b"], "label index -1"),
        ([0.0, 1.0], [0, 1], ["a", "b"], "integer"),
        ([0, 1], [0, 1], ["a", "a"], "duplicates"),
    ],
)
def test_classification_report_refuses_bad_input(gold, pred, labels, message):
    with pytest.raises(ValueError, match=message):
        classification_report(gold, pred, labels)


# --- sequences --------------------------------------------------------------------------------


def test_flatten_sequences_checks_alignment():
    assert flatten_sequences([[1, 2], [3]], [[1, 1], [3]]) == ([1, 2, 3], [1, 1, 3])
    with pytest.raises(ValueError, match="sequence 1: 1 gold labels but 2 predicted"):
        flatten_sequences([[1, 2], [3]], [[1, 1], [3, 3]])
    with pytest.raises(ValueError, match="2 gold sequences but 1"):
        flatten_sequences([[1], [2]], [[1]])


def test_sequence_report_per_token_with_strings_or_indices():
    labels = ["O", "PER|B", "PER|I"]
    gold = [["PER|B", "PER|I", "O"], ["O"]]
    pred = [["PER|B", "O", "O"], ["PER|B"]]
    by_string = sequence_report(gold, pred, labels)
    by_index = sequence_report([[1, 2, 0], [0]], [[1, 0, 0], [1]], labels)
    assert by_string == by_index
    assert by_string["task"] == "sequence" and by_string["sequences"] == 2 and by_string["instances"] == 4
    assert by_string["accuracy"] == pytest.approx(2 / 4)
    assert by_string["per_label"]["PER|B"]["precision"] == pytest.approx(0.5)
    spans = by_string["spans"]["overall"]
    assert (spans["gold"], spans["predicted"], spans["correct"]) == (1, 2, 0)


def test_sequence_report_without_chunk_labels_has_no_spans():
    report = sequence_report([["NN", "VB"]], [["NN", "NN"]], ["NN", "VB"])
    assert "spans" not in report
    with pytest.raises(ValueError, match="'JJ'"):
        sequence_report([["NN", "JJ"]], [["NN", "NN"]], ["NN", "VB"])


# --- chunk spans ------------------------------------------------------------------------------


def spans(labels):
    return [(s.type, s.start, s.end) for s in decode_spans(labels)]


def test_b_opens_i_extends_o_closes():
    assert spans(["PER|B", "PER|I", "O", "LOC|B"]) == [("PER", 0, 2), ("LOC", 3, 4)]


def test_i_without_open_chunk_is_ignored():
    assert spans(["O", "PER|I", "PER|I"]) == []
    assert spans(["PER|I", "PER|B", "PER|I"]) == [("PER", 1, 3)]
    # an I of another type neither continues nor starts anything, and closes the open chunk
    assert spans(["PER|B", "LOC|I", "LOC|I"]) == [("PER", 0, 1)]


def test_adjacent_b_b_gives_two_chunks():
    assert spans(["PER|B", "PER|B", "PER|I"]) == [("PER", 0, 1), ("PER", 1, 3)]


def test_combined_labels_track_each_type():
    assert spans(["LOC|B,PER|B", "LOC|I,PER|I", "PER|I", "O"]) == [("LOC", 0, 2), ("PER", 0, 3)]
    # types absent from the current label close; a later I of a closed type starts nothing
    assert spans(["LOC|B", "LOC|I,PER|B", "PER|I", "LOC|I"]) == [("LOC", 0, 2), ("PER", 1, 3)]


def test_missing_label_closes_and_end_of_sequence_closes():
    assert spans(["PER|B", None, "PER|I"]) == [("PER", 0, 1)]
    assert spans(["PER|B", "", "PER|B"]) == [("PER", 0, 1), ("PER", 2, 3)]
    assert decode_spans(["ORG|B", "ORG|I"]) == [Span(0, 2, "ORG")]


@pytest.mark.parametrize("label, message", [("PER", "odd type and code"), ("PER|E", "unexpected chunk code")])
def test_malformed_chunk_labels_are_errors_as_in_gate(label, message):
    with pytest.raises(ValueError, match=message):
        decode_spans(["O", label])


def test_span_report_hand_computed():
    gold = [["PER|B", "PER|I", "O", "LOC|B"], ["ORG|B", "O"]]
    pred = [["PER|B", "O", "O", "LOC|B"], ["ORG|B", "ORG|I"]]
    report = span_report(gold, pred)
    assert report["overall"] == pytest.approx(
        {"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3, "gold": 3, "predicted": 3, "correct": 1}
    )
    assert report["per_type"]["LOC"]["f1"] == 1.0
    assert report["per_type"]["PER"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "gold": 1,
        "predicted": 1,
        "correct": 0,
    }
    assert list(report["per_type"]) == ["LOC", "ORG", "PER"]
    assert strict_json(report) == report


def test_sequence_boundaries_separate_spans():
    # the I at the start of the second sequence does not continue the first sequence's chunk
    gold = [["O", "PER|B"], ["PER|I", "O"]]
    assert span_report(gold, gold)["overall"]["gold"] == 1
    assert span_report([["O", "PER|B", "PER|I", "O"]], [["O", "PER|B", "PER|I", "O"]])["overall"]["gold"] == 1
    # the same span position in another sequence is not a match
    report = span_report([["PER|B"], ["O"]], [["O"], ["PER|B"]])
    assert report["overall"]["correct"] == 0 and report["overall"]["f1"] == 0.0


def test_is_chunk_label_set():
    assert is_chunk_label_set(["O", "PER|B", "PER|I", "LOC|B,PER|I"])
    assert is_chunk_label_set(["MISC|B"])
    assert not is_chunk_label_set(["O"])
    assert not is_chunk_label_set([])
    assert not is_chunk_label_set(["NN", "VB"])
    assert not is_chunk_label_set(["O", "PER|E"])
    assert not is_chunk_label_set(["O", "|B"])
    assert not is_chunk_label_set(["O", "PER|B|I"])


def test_real_chunking_data_seq_pos2():
    labels, targets = read_lf("seq-pos2")
    assert is_chunk_label_set(labels)
    report = sequence_report(targets, targets, labels)
    assert report["instances"] == 2356 and report["sequences"] == 100 and report["accuracy"] == 1.0
    b_parts = sum(part.endswith("|B") for seq in targets for label in seq for part in label.split(","))
    assert report["spans"]["overall"]["gold"] == b_parts == 70 + 67 + 51 + 40
    assert report["spans"]["overall"]["f1"] == 1.0
    all_outside = [["O"] * len(seq) for seq in targets]
    report = sequence_report(targets, all_outside, labels)
    assert report["accuracy"] == pytest.approx(2026 / 2356)
    assert report["spans"]["overall"]["recall"] == 0.0 and report["spans"]["overall"]["predicted"] == 0
    assert report["per_label"]["O"]["recall"] == 1.0


def test_real_pos_tags_are_not_chunk_labels():
    labels, _ = read_lf("seq-pos1")
    assert not is_chunk_label_set(labels)


# --- regression -------------------------------------------------------------------------------


def test_regression_report_hand_computed():
    report = regression_report([1, 2, 3, 4], [1, 2, 3, 5])
    assert report == pytest.approx(
        {"task": "regression", "instances": 4, "mse": 0.25, "rmse": 0.5, "mae": 0.25, "r2": 0.8}
    )
    assert strict_json(report) == report


def test_regression_r2_with_constant_gold_and_bad_input():
    assert regression_report([2, 2], [2, 2])["r2"] == 1.0
    assert regression_report([2, 2], [2, 3])["r2"] == 0.0
    assert regression_report([], [])["mse"] == 0.0
    with pytest.raises(ValueError, match="finite"):
        regression_report([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="gold has 2"):
        regression_report([1.0, 2.0], [1.0])


# --- formatting -------------------------------------------------------------------------------


def test_format_report_tables():
    report = sequence_report([["PER|B", "PER|I", "O"]], [["PER|B", "O", "O"]], ["O", "PER|B", "PER|I"])
    text = format_report(report)
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert rows["O"][1:] == ["0.5000", "1.0000", "0.6667", "1", "2"]
    assert rows["PER|I"][1:] == ["0.0000", "0.0000", "0.0000", "1", "0"]
    assert "accuracy  0.6667  (3 tokens in 1 sequences)" in text
    assert rows["PER"][1:] == ["0.0000", "0.0000", "0.0000", "1", "1", "0"]
    assert rows["(overall)"][4:] == ["1", "1", "0"]
    regression = format_report(regression_report([1, 2, 3, 4], [1, 2, 3, 5]))
    assert "mse       0.25" in regression and "r2        0.8000" in regression
    assert "(overall)" in format_report(span_report([["PER|B"]], [["PER|B"]]))
    with pytest.raises(ValueError):
        format_report({"something": 1})
