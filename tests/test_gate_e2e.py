"""End to end as GATE runs it: train.sh on real LF data, then apply.sh driven line by line.

The data directory looks like one the LF plugin prepared (crvd.meta.json, crvd.data.json,
FileJsonPyTorch/); the scripts run with the plugin's working directory, environment and
argument order, and every reply is checked against the casts of the Java side
(gate-plugin.md §7.3, §7.5). Training is kept short (--maxepochs 2).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from timeouts import scaled

from lfengine.gate.client import MODEL_PREFIX_NAME, ApplyProcess, gate_environment, run_training
from lfengine.gate.wrapper import WRAPPER_NAME


def make_datadir(root: Path, lfdata: Path, name: str) -> Path:
    datadir = root / name
    datadir.mkdir()
    for kind in ("meta", "data"):
        shutil.copyfile(lfdata / f"{name}.{kind}.json", datadir / f"crvd.{kind}.json")
    # As a user does it: the installed command line writes the wrapper folder.
    done = subprocess.run(
        [sys.executable, "-m", "lfengine", "gate-wrapper", str(datadir)], capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    assert (datadir / WRAPPER_NAME / "apply.sh").is_file()
    return datadir


def trained(tmp_path_factory, lfdata: Path, name: str) -> Path:
    datadir = make_datadir(tmp_path_factory.mktemp("gate"), lfdata, name)
    result = run_training(datadir, ["--maxepochs", "2"], python=sys.executable)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert result.stdout.decode().strip().endswith("PROCESSING OK 0")
    return datadir


@pytest.fixture(scope="module")
def ionosphere(tmp_path_factory, lfdata) -> Path:
    return trained(tmp_path_factory, lfdata, "class-ionosphere")


@pytest.fixture(scope="module")
def ner(tmp_path_factory, lfdata) -> Path:
    return trained(tmp_path_factory, lfdata, "seq-pos2")


def records(datadir: Path, limit: int | None = None) -> list[list]:
    lines = (datadir / "crvd.data.json").read_text(encoding="utf-8").splitlines()[:limit]
    return [json.loads(line) for line in lines]


def strict(reply: bytes) -> dict:
    """Parse like Jackson + the LF's casts: ASCII line, no integers (Double casts), no NaN."""
    assert reply.endswith(b"\n") and max(reply) < 128, reply

    def integer(text):
        raise AssertionError(f"integer {text} in {reply!r}")

    def constant(text):
        raise AssertionError(f"{text} in {reply!r}")

    return json.loads(reply, parse_int=integer, parse_constant=constant)


def check_distribution(output: str, conf: float, dist: list, labels: list, *, decoded: bool = False) -> None:
    """Real probabilities in labels order; conf is the output's probability. A decoded sequence
    label (CRF/Viterbi) need not be the per-position argmax, and its float32 marginals sum
    to 1 less exactly."""
    assert isinstance(output, str) and isinstance(conf, float)
    assert len(dist) == len(labels) and all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in dist)
    assert math.isclose(sum(dist), 1.0, abs_tol=1e-3 if decoded else 1e-5)
    if decoded:
        assert math.isclose(conf, dist[labels.index(output)], abs_tol=1e-3)
    else:
        assert conf == max(dist) and output == labels[dist.index(conf)]


@pytest.fixture
def stderr_file(tmp_path):
    with open(tmp_path / "apply.stderr", "w+b") as f:
        yield f


def stderr_text(f) -> str:
    f.seek(0)
    return f.read().decode("utf-8", "replace")


def test_train_sh_writes_the_model_where_apply_finds_it(ionosphere):
    assert (ionosphere / f"{MODEL_PREFIX_NAME}.d").is_dir()


def test_classification_replies_have_the_types_gate_casts_to(ionosphere, stderr_file):
    with ApplyProcess(ionosphere, python=sys.executable, stderr=stderr_file) as apply:
        for features, _target in records(ionosphere, 40):
            reply = strict(apply.request(json.dumps(features)))
            assert list(reply) == ["status", "output", "labels", "conf", "dist"]
            assert reply["status"] == "ok" and reply["labels"] == ["g", "b"]
            check_distribution(reply["output"], reply["conf"], reply["dist"], reply["labels"])
        assert apply.close() == 0
    assert "model loaded from" in stderr_text(stderr_file)


def test_bad_requests_get_error_replies_and_the_process_carries_on(ionosphere, stderr_file):
    features = records(ionosphere, 1)[0][0]
    with ApplyProcess(ionosphere, python=sys.executable, stderr=stderr_file) as apply:
        for bad, message in (
            (b"this is not json", "not valid JSON"),
            (b"[1.0, 2.0]", "has 2 feature values, the model expects 34"),
            (json.dumps(["x"] * 34).encode(), "x"),
            (b"", "empty request line"),
        ):
            reply = strict(apply.request(bad))
            assert reply["status"] == "error" and message in reply["error"], reply
        windows = strict(apply.request(json.dumps(features), newline=b"\r\n"))  # a Windows JVM
        assert windows["status"] == "ok"
        assert apply.close(stop_line=b"STOP\r\n") == 0


def test_apply_ends_with_0_on_eof_at_once(ionosphere, stderr_file):
    with ApplyProcess(ionosphere, python=sys.executable, stderr=stderr_file) as apply:
        assert apply.close() == 0


def test_sequence_replies_have_one_entry_per_element(ner, stderr_file):
    with ApplyProcess(ner, python=sys.executable, stderr=stderr_file) as apply:
        for sequence, _targets in records(ner, 15):
            reply = strict(apply.request(json.dumps(sequence)))
            labels = reply["labels"]
            assert reply["status"] == "ok" and "PER|B" in labels and "O" in labels
            assert len(reply["output"]) == len(reply["conf"]) == len(reply["dist"]) == len(sequence)
            for output, conf, dist in zip(reply["output"], reply["conf"], reply["dist"]):
                check_distribution(output, conf, dist, labels, decoded=True)
        empty = strict(apply.request(b"[]"))
        assert (empty["status"], empty["output"], empty["conf"], empty["dist"]) == ("ok", [], [], [])
        one = strict(apply.request(b'[["paris"]]'))  # one element, one column: still a sequence
        assert len(one["output"]) == 1
        legacy = strict(apply.request('[["café"],["zürich"]]'.encode("cp1252")))  # old JVM charset
        assert legacy["status"] == "ok" and len(legacy["output"]) == 2
        assert apply.close() == 0
    assert "windows-1252" in stderr_text(stderr_file)


def labeled_run(datadir: Path) -> str:
    data = (datadir / "crvd.data.json").read_bytes()
    result = subprocess.run(
        [
            str(datadir / WRAPPER_NAME / "apply.sh"),
            str(datadir / MODEL_PREFIX_NAME),
            str(datadir / "crvd.meta.json"),
            str(datadir / WRAPPER_NAME),
            "--labeled",
            "--noret",
        ],
        cwd=datadir,
        env=gate_environment(datadir, sys.executable),
        input=data,
        capture_output=True,
        timeout=scaled(600),
    )
    assert result.returncode == 0 and result.stdout == b"", result.stderr.decode()[-2000:]
    return result.stderr.decode()


def accuracy(summary: str) -> float:
    return float(summary.split("acc=")[1].split(",")[0].split()[0])


def test_labeled_apply_reports_accuracy_for_classification(ionosphere):
    err = labeled_run(ionosphere)
    line = next(line for line in err.splitlines() if line.startswith("Total "))
    assert line.startswith("Total 351, correct ") and accuracy(line) > 0.7


def test_labeled_apply_counts_elements_for_sequences(ner):
    err = labeled_run(ner)
    line = next(line for line in err.splitlines() if line.startswith("Total "))
    assert line.startswith("Total 2356 elements in 100 sequences, correct ")
    assert accuracy(line) >= 2026 / 2356 - 0.05  # at least about the all-"O" baseline after 2 epochs


def test_notrain_shows_the_network_and_apply_then_explains_the_missing_model(tmp_path, lfdata, stderr_file):
    datadir = make_datadir(tmp_path, lfdata, "class-ionosphere")
    result = run_training(datadir, ["--notrain"], python=sys.executable)
    out = result.stdout.decode()
    assert result.returncode == 0 and out.strip().endswith("PROCESSING OK 0")
    assert "\narchitecture:\nmodel: " in out  # the text ``lfengine describe`` prints
    assert not (datadir / f"{MODEL_PREFIX_NAME}.d").exists()
    with ApplyProcess(datadir, python=sys.executable, stderr=stderr_file) as apply:
        reply = strict(apply.request(b"[1.0]"))
        assert reply["status"] == "error" and "was training run with --notrain" in reply["error"]
        assert apply.close() == 127  # apply.sh's code for a failed Python; GATE never looks


def test_failed_training_exits_127_and_leaves_no_model(tmp_path, lfdata):
    datadir = make_datadir(tmp_path, lfdata, "class-ionosphere")
    result = run_training(datadir, ["--module", "NoSuchModule", "--maxepochs", "1"], python=sys.executable)
    assert result.returncode == 127
    err = result.stderr.decode()
    assert "gate-train: error:" in err and "NoSuchModule" in err and "PROCESSING ERROR 1" in err
    assert not (datadir / f"{MODEL_PREFIX_NAME}.d").exists()


@pytest.mark.parametrize("fixture", ["ionosphere", "ner"])
def test_a_recorded_conversation_replays_identically(fixture, request, tmp_path, stderr_file):
    """Record a lockstep conversation as GATE holds it (including a bad line), then replay the
    recorded requests through a fresh apply.sh in one go: the same replies, byte for byte."""
    datadir = request.getfixturevalue(fixture)
    lines = [json.dumps(features).encode() for features, _ in records(datadir, 25)]
    lines.insert(5, b"[1, 2, ")  # a broken request is part of the conversation too
    recording = tmp_path / "conversation.jsonl"
    with (
        ApplyProcess(datadir, python=sys.executable, stderr=stderr_file) as apply,
        open(recording, "wb") as out,
    ):
        for line in lines:
            reply = apply.request(line)
            out.write(json.dumps({"request": line.decode(), "reply": reply.decode()}).encode() + b"\n")
        assert apply.close() == 0
    turns = [json.loads(line) for line in recording.read_text().splitlines()]
    assert [t["reply"].startswith('{"status":"error"') for t in turns].count(True) == 1
    replayed = subprocess.run(
        [
            "sh",
            str(datadir / WRAPPER_NAME / "apply.sh"),
            str(datadir / MODEL_PREFIX_NAME),
            str(datadir / "crvd.meta.json"),
            str(datadir / WRAPPER_NAME),
        ],
        input=b"".join(t["request"].encode() + b"\n" for t in turns),
        capture_output=True,
        cwd=datadir,
        env=gate_environment(datadir, sys.executable),
        timeout=scaled(300),
    )
    assert replayed.returncode == 0, replayed.stderr.decode()[-2000:]
    assert replayed.stdout.decode().splitlines(keepends=True) == [t["reply"] for t in turns]
