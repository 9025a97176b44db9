"""The old wrapper's line protocol (lfengine/protocol/legacy.py).

The models here are small, real implementations of the LoadedModel interface (deterministic
probabilities, DataLineError on bad values) so that edge values the Java side trips over -
probabilities of exactly 0 and 1, numpy scalars, NaN - can be produced on purpose. The same
loop is driven by a trained model in tests/test_gate_e2e.py.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import threading

import numpy as np
import pytest
from timeouts import scaled

from lfengine.errors import DataLineError
from lfengine.protocol.legacy import (
    decode_request_line,
    run_error_loop,
    run_legacy_loop,
)


class NumericClassifier:
    """Two numeric features, labels g/b: P(g) = sigmoid(x0 - x1), as float32 like torch output."""

    task = "classification"
    is_sequence = False
    labels = ["g", "b"]
    num_features = 2

    def apply(self, instances, *, distribution=False):
        results = []
        for i, vector in enumerate(instances):
            for value, name in zip(vector, ("x0", "x1")):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise DataLineError("not a number", index=i, feature=name, found=repr(value))
            p = np.float32(1.0 / (1.0 + math.exp(-(vector[0] - vector[1]))))
            dist = [p, np.float32(1.0) - p]
            best = int(dist[1] > dist[0])
            result = {"label": self.labels[best], "confidence": dist[best]}
            if distribution:
                result["distribution"] = dist
            results.append(result)
        return results


class CapitalTagger:
    """One nominal feature per element: capitalised words are PER|B (p=1.0), others O (p=0.75)."""

    task = "sequence"
    is_sequence = True
    labels = ["O", "PER|B"]
    num_features = 1

    def __init__(self, drop_last: bool = False):
        self.drop_last = drop_last
        self.seen: list = []

    def apply(self, instances, *, distribution=False):
        results = []
        for sequence in instances:
            self.seen.append(sequence)
            labels, confs, dists = [], [], []
            for (word,) in sequence:
                if word[:1].isupper():
                    labels.append("PER|B"), confs.append(1.0), dists.append([0.0, 1.0])
                else:
                    labels.append("O"), confs.append(0.75), dists.append([0.75, 0.25])
            if self.drop_last:
                labels, confs, dists = labels[:-1], confs[:-1], dists[:-1]
            result = {"label": labels, "confidence": confs}
            if distribution:
                result["distribution"] = dists
            results.append(result)
        return results


class Regressor:
    """Regression: the prediction is x0 + x1, whole numbers included."""

    task = "regression"
    is_sequence = False
    labels: list = []
    num_features = 2

    def apply(self, instances, *, distribution=False):
        return [{"label": np.float32(x[0] + x[1]), "confidence": 1.0} for x in instances]


class NaNModel(NumericClassifier):
    def apply(self, instances, *, distribution=False):
        return [{"label": "g", "confidence": np.float32("nan"), "distribution": [np.nan, np.nan]}]


class BrokenModel(NumericClassifier):
    def apply(self, instances, *, distribution=False):
        raise RuntimeError("shape mismatch in layer 3")


def converse(model, data: bytes, **kwargs) -> tuple[int, list[bytes]]:
    stdout = io.BytesIO()
    code = run_legacy_loop(model, io.BytesIO(data), stdout, **kwargs)
    return code, stdout.getvalue().splitlines(keepends=True)


def strict(line: bytes) -> dict:
    """Parse a reply as the Java side does: integers would fail the Double casts."""
    assert line.endswith(b"\n") and max(line) < 128, line

    def no_int(text):
        raise AssertionError(f"JSON integer {text} in reply {line!r}")

    def no_constant(text):
        raise AssertionError(f"{text} in reply {line!r}")

    return json.loads(line, parse_int=no_int, parse_constant=no_constant)


def test_classification_reply_has_the_java_types_and_key_order():
    code, lines = converse(NumericClassifier(), b"[2.0, 1.0]\n")
    assert code == 0 and len(lines) == 1
    reply = strict(lines[0])
    assert list(reply) == ["status", "output", "labels", "conf", "dist"]
    assert reply["status"] == "ok" and reply["output"] == "g" and reply["labels"] == ["g", "b"]
    assert isinstance(reply["conf"], float) and reply["conf"] == pytest.approx(
        1 / (1 + math.exp(-1)), abs=1e-6
    )
    assert all(isinstance(p, float) for p in reply["dist"])
    assert reply["dist"][0] == reply["conf"] and sum(reply["dist"]) == pytest.approx(1.0)


def test_certain_predictions_are_written_as_floats_not_integers():
    _, lines = converse(NumericClassifier(), b"[0, 500]\n")
    reply = strict(lines[0])
    assert reply["output"] == "b"
    assert b'"conf":1.0' in lines[0] and b'"dist":[0.0,1.0]' in lines[0]


def test_sequence_reply_has_one_entry_per_element_and_empty_lists_for_empty_sequence():
    model = CapitalTagger()
    code, lines = converse(model, b'[["Ann"],["runs"]]\n[]\n')
    assert code == 0 and len(lines) == 2
    first = strict(lines[0])
    assert first["output"] == ["PER|B", "O"] and first["labels"] == ["O", "PER|B"]
    assert first["conf"] == [1.0, 0.75] and first["dist"] == [[0.0, 1.0], [0.75, 0.25]]
    assert strict(lines[1]) == {
        "status": "ok",
        "output": [],
        "labels": ["O", "PER|B"],
        "conf": [],
        "dist": [],
    }
    assert model.seen == [[["Ann"], ["runs"]]]  # the empty sequence never reaches the model


def test_a_one_element_sequence_is_not_mistaken_for_a_vector():
    _, lines = converse(CapitalTagger(), b'[["Bob"]]\n')
    assert strict(lines[0])["output"] == ["PER|B"]


@pytest.mark.parametrize(
    ("request_line", "expected"),
    [
        (b"[1.0, \n", "not valid JSON"),
        (b"[1.0]\n", "has 1 feature values, the model expects 2"),
        (b'{"a": 1}\n', "must be a JSON array of 2 feature values, got dict"),
        (b"[NaN, 1.0]\n", "NaN is not valid JSON"),
        (b'[1.0, "x"]\n', "feature 'x1': not a number"),
        (b"\n", "empty request line"),
        (b"[1.0, 1e999]\n", "the number 1e999 is out of range"),
    ],
)
def test_bad_requests_get_an_error_reply_and_the_loop_goes_on(request_line, expected):
    code, lines = converse(NumericClassifier(), request_line + b"[3.0, 1.0]\n")
    assert code == 0 and len(lines) == 2
    error = strict(lines[0])
    assert error["status"] == "error" and expected in error["error"], error
    assert strict(lines[1])["status"] == "ok"


def test_sequence_shape_errors_name_the_element():
    _, lines = converse(CapitalTagger(), b'[["Ann"], "runs"]\n[["a", "b"]]\n')
    assert "element 1 must be a JSON array" in strict(lines[0])["error"]
    assert "element 0 has 2 feature values, the model expects 1" in strict(lines[1])["error"]


def test_internal_errors_become_error_replies(caplog):
    _, lines = converse(BrokenModel(), b"[1.0, 2.0]\n[1.0, 2.0]\n")
    assert len(lines) == 2
    assert strict(lines[0])["error"] == "internal error (RuntimeError): shape mismatch in layer 3"
    assert "shape mismatch" in caplog.text


def test_regression_output_is_a_float_and_labeled_runs_report_the_mean_absolute_error(capsys):
    _, lines = converse(Regressor(), b"[1, 2]\n")
    assert strict(lines[0]) == {"status": "ok", "output": 3.0}
    _, lines = converse(Regressor(), b'[[1, 2], 4.0]\n[[1, 1], 2]\n[[1, 1], "x"]\n', labeled=True)
    assert "must be a number" in strict(lines[2])["error"]
    assert capsys.readouterr().err.strip() == (
        "Total 2, mean absolute error=0.5000, 1 request(s) failed and are not counted"
    )


def test_a_non_finite_prediction_is_never_sent_as_nan():
    _, lines = converse(NaNModel(), b"[1.0, 2.0]\n")
    assert "non-finite probability (nan)" in strict(lines[0])["error"]


def test_a_prediction_with_too_few_elements_is_refused():
    _, lines = converse(CapitalTagger(drop_last=True), b'[["Ann"],["runs"]]\n')
    assert "predictions for 1 of 2 elements" in strict(lines[0])["error"]


@pytest.mark.parametrize("stop", [b"STOP\n", b"STOP\r\n", b"  STOP \n"])
def test_stop_line_ends_the_loop_with_code_0(stop):
    code, lines = converse(NumericClassifier(), b"[2.0, 1.0]\n" + stop + b"[2.0, 1.0]\n")
    assert code == 0 and len(lines) == 1


def test_stop_without_newline_at_the_end_is_not_answered():
    code, lines = converse(NumericClassifier(), b"[2.0, 1.0]\nSTOP")
    assert code == 0 and len(lines) == 1


def test_crlf_and_a_missing_final_newline_are_accepted():
    code, lines = converse(NumericClassifier(), b"[2.0, 1.0]\r\n[1.0, 2.0]")
    assert code == 0 and [strict(line)["output"] for line in lines] == ["g", "b"]


def test_windows_1252_requests_are_decoded_and_replies_stay_ascii(caplog):
    assert decode_request_line('["café"]\r\n'.encode("cp1252")) == '["café"]'
    assert decode_request_line('["café"]\n'.encode()) == '["café"]'
    assert decode_request_line(b'["\x81"]\n') == '["\x81"]'  # undefined in cp1252: latin-1
    model = CapitalTagger()
    with caplog.at_level(logging.WARNING):
        _, lines = converse(model, '[["Émile"],["ça"]]\n'.encode("cp1252"))
    assert model.seen == [[["Émile"], ["ça"]]]
    assert strict(lines[0])["output"] == ["PER|B", "O"]
    assert "windows-1252" in caplog.text


def test_non_ascii_labels_are_escaped():
    model = NumericClassifier()
    model.labels = ["gut", "böse"]
    _, lines = converse(model, b"[0.0, 3.0]\n")
    assert b'"b\\u00f6se"' in lines[0]
    assert strict(lines[0])["output"] == "böse"


def test_labeled_classification_prints_accuracy_at_eof(capsys):
    data = b'[[2.0, 1.0], "g"]\n[[0.0, 1.0], "g"]\n[[0.0, 1.0], "b"]\n[[1.0], "b"]\n'
    code, lines = converse(NumericClassifier(), data, labeled=True)
    assert code == 0 and len(lines) == 4
    assert capsys.readouterr().err.strip() == (
        "Total 3, correct 2, acc=0.6667, 1 request(s) failed and are not counted"
    )


def test_labeled_sequences_count_elements(capsys):
    data = b'[[["Ann"],["runs"]], ["PER|B","PER|B"]]\n[[["Bo"]], ["PER|B"]]\n[[], []]\n'
    _, lines = converse(CapitalTagger(), data, labeled=True)
    assert [strict(line)["status"] for line in lines] == ["ok", "ok", "ok"]
    assert capsys.readouterr().err.strip() == "Total 3 elements in 3 sequences, correct 2, acc=0.6667"


def test_labeled_target_must_match_the_sequence():
    _, lines = converse(CapitalTagger(), b'[[["Ann"],["runs"]], ["O"]]\n[["Ann"]]\n', labeled=True)
    assert "target must be a list of 2 labels" in strict(lines[0])["error"]
    assert "[features, target]" in strict(lines[1])["error"]


def test_unlabeled_run_prints_no_summary_and_noret_writes_nothing(capsys):
    _, lines = converse(NumericClassifier(), b"[2.0, 1.0]\n")
    assert lines and capsys.readouterr().err == ""
    _, lines = converse(NumericClassifier(), b'[[2.0, 1.0], "g"]\n', labeled=True, noret=True)
    assert lines == [] and "Total 1, correct 1, acc=1.0000" in capsys.readouterr().err


def test_logevery_logs_processed_counts(caplog):
    with caplog.at_level(logging.INFO, logger="lfengine.protocol.legacy"):
        converse(NumericClassifier(), b"[2.0, 1.0]\n" * 5, logevery=2)
    assert [r.getMessage() for r in caplog.records if "Processed" in r.getMessage()] == [
        "Processed: 2",
        "Processed: 4",
    ]


def test_replies_come_in_lockstep_over_a_real_pipe():
    """Each reply must arrive before the next request is written, as GATE waits for it."""
    request_read, request_write = os.pipe()
    reply_read, reply_write = os.pipe()
    with open(request_read, "rb") as stdin, open(reply_write, "wb") as stdout:
        result = {}
        worker = threading.Thread(
            target=lambda: result.setdefault("code", run_legacy_loop(NumericClassifier(), stdin, stdout))
        )
        worker.start()
        with open(request_write, "wb", buffering=0) as requests, open(reply_read, "rb") as replies:
            for x0, expected in ((2.0, "g"), (0.0, "b"), (5.0, "g")):
                requests.write(f"[{x0}, 1.0]\n".encode())
                assert strict(replies.readline())["output"] == expected
            requests.write(b"STOP\n")
            worker.join(timeout=scaled(10))
    assert result == {"code": 0}


def test_error_loop_answers_every_request_with_the_startup_error():
    stdout = io.BytesIO()
    code = run_error_loop(
        "no model at /x/FileJsonPyTorch.model.d", io.BytesIO(b"[1]\n[2]\nSTOP\n[3]\n"), stdout
    )
    lines = stdout.getvalue().splitlines(keepends=True)
    assert code == 1 and len(lines) == 2
    assert strict(lines[1]) == {"status": "error", "error": "no model at /x/FileJsonPyTorch.model.d"}


def test_an_over_long_request_line_gets_an_error_reply_and_the_loop_goes_on() -> None:
    model = NumericClassifier()
    good = json.dumps([1.0, 0.0]).encode()
    stdin = io.BytesIO(b"[" + b"1," * 100 + b"1]\n" + good + b"\n")
    stdout = io.BytesIO()
    assert run_legacy_loop(model, stdin, stdout, max_line_bytes=64) == 0
    first, second = stdout.getvalue().splitlines()
    assert json.loads(first) == {"status": "error", "error": "request line longer than 64 bytes"}
    assert json.loads(second)["status"] == "ok"
