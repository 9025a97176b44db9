"""The command line, run as a real process (`python -m lfengine`) on a tiny generated corpus:
describe, train, evaluate, apply, and how it fails (exit 1, a message on stderr, stdout clean)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from timeouts import scaled

from lfengine import cli, service
from lfengine.data.synthetic import write_classification_corpus, write_sequence_corpus
from lfengine.storage import store

REPO = Path(__file__).resolve().parent.parent


def lfengine(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "lfengine", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        stdin=subprocess.DEVNULL,
    )


def _data(meta: Path) -> Path:
    return meta.with_name(meta.name.replace(".meta.", ".data."))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_classification_corpus(tmp_path_factory.mktemp("cli"), 120, seed=11)


@pytest.fixture(scope="module")
def trained(corpus: Path) -> tuple[Path, dict]:
    """`lfengine train` once for the module; returns the model dir and the printed result."""
    model_dir = corpus.parent / "model"
    run = lfengine("train", str(corpus), str(model_dir), "--max-epochs", "3", "--threads", "1", "--json")
    assert run.returncode == 0, run.stderr
    return model_dir, json.loads(run.stdout)  # stdout holds the result and nothing else


def test_describe_json_has_the_documented_keys(corpus: Path) -> None:
    run = lfengine("describe", str(corpus), "--json", "--set", "hidden_size=64", "--max-epochs", "7")
    assert run.returncode == 0, run.stderr
    d = json.loads(run.stdout)
    assert d["task"] == "classification"
    assert {"text", "tree", "parameters"} <= set(d["architecture"])
    assert isinstance(d["architecture"]["text"], str) and "Classifier" in d["architecture"]["text"]
    assert d["architecture"]["parameters"] == d["architecture"]["tree"]["parameters"] > 0
    assert d["vocabularies"] and all(
        {"emb_id", "size", "dims", "mode", "pretrained"} <= set(v) for v in d["vocabularies"]
    )
    assert d["vocabularies"][0]["emb_id"] == "token" and d["vocabularies"][0]["pretrained"] is False
    assert sorted(d["labels"]) == ["politics", "science", "sport"]
    hyper = d["hyperparameters"]
    assert all(set(h) == {"value", "source"} for h in hyper.values())
    assert hyper["hidden_size"] == {"value": 64, "source": "option"}
    assert hyper["max_epochs"] == {"value": 7, "source": "option"}
    assert hyper["learning_rate"]["source"] == "heuristic"


def run_in_process(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """cli.main in this process (no torch start-up): exit code and stdout."""
    capsys.readouterr()
    code = cli.main(list(args))
    return code, capsys.readouterr().out


def test_train_prints_its_result_and_writes_a_model(trained: tuple[Path, dict], capsys) -> None:
    model_dir, result = trained
    assert result["model_dir"] == str(model_dir)
    assert result["epochs"] == 3 and result["stopped"] == "max-epochs"
    assert 0.0 <= result["best"]["accuracy"] <= 1.0
    assert (model_dir / "model.json").is_file() and store.committed_file(model_dir, "weights").is_file()
    code, out = run_in_process(capsys, "describe", str(model_dir), "--json")
    assert code == 0
    assert json.loads(out)["hyperparameters"]["max_epochs"]["value"] == 3


def test_evaluate_as_table_and_as_json(trained: tuple[Path, dict], corpus: Path) -> None:
    model_dir, _ = trained
    as_json = lfengine("evaluate", str(model_dir), str(_data(corpus)), "--json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    warnings = report.pop("warnings")
    assert report == service.evaluate(str(model_dir), str(_data(corpus)))  # the protocol's reply too
    confusion = report["confusion"]
    matrix = confusion["matrix"]
    assert confusion["labels"] == service.load_model(str(model_dir)).labels
    assert sum(map(sum, matrix)) == report["instances"]
    assert sum(matrix[i][i] for i in range(len(matrix))) == round(report["accuracy"] * report["instances"])
    assert [sum(row) for row in matrix] == [report["per_label"][k]["support"] for k in confusion["labels"]]
    assert any("training data file" in w for w in warnings)  # the model was trained on this very file
    table = lfengine("evaluate", str(model_dir), str(_data(corpus)))
    assert table.returncode == 0, table.stderr
    for label in ("politics", "science", "sport"):
        assert label in table.stdout
    assert f"{report['accuracy']:.4f}" in table.stdout
    assert "confusion matrix (rows: gold, columns: predicted):" in table.stdout
    assert "warning: this is the training data file" in table.stdout


def test_apply_writes_one_json_line_per_instance(
    trained: tuple[Path, dict], corpus: Path, tmp_path: Path, capsys
) -> None:
    model_dir, _ = trained
    records = [json.loads(line) for line in _data(corpus).read_text(encoding="utf-8").splitlines()]
    unlabeled = tmp_path / "unlabeled.json"
    unlabeled.write_text("".join(json.dumps(r[0]) + "\n" for r in records[:30]), encoding="utf-8")
    run = lfengine("apply", str(model_dir), str(unlabeled), "--distribution")
    assert run.returncode == 0, run.stderr
    results = [json.loads(line) for line in run.stdout.splitlines()]
    model = service.load_model(str(model_dir))
    expected = model.apply([r[0] for r in records[:30]], distribution=True)
    assert len(results) == len(expected) == 30
    for line, result in zip(results, expected):  # another process, the same model: the same answers
        assert list(line) == ["label", "confidence", "distribution"]
        assert (line["label"], line["confidence"]) == (result["label"], result["confidence"])
        distribution = line["distribution"]  # each probability under its label's name
        assert list(distribution) == model.labels and set(model.labels) == {"politics", "science", "sport"}
        assert list(distribution.values()) == result["distribution"]
        assert max(distribution, key=distribution.get) == line["label"]
        assert distribution[line["label"]] == line["confidence"]
    code, out = run_in_process(capsys, "apply", str(model_dir), str(_data(corpus)), "--labeled")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(records) and all(set(json.loads(x)) == {"label", "confidence"} for x in lines)


def test_apply_sequences(tmp_path: Path, capsys) -> None:
    meta = write_sequence_corpus(tmp_path, 30, seed=1)
    code, out = run_in_process(
        capsys, "train", str(meta), str(tmp_path / "m"), "--max-epochs", "1", "--threads", "1", "--json"
    )
    assert code == 0 and json.loads(out)["epochs"] == 1
    code, out = run_in_process(capsys, "apply", str(tmp_path / "m"), str(_data(meta)), "--labeled")
    assert code == 0
    records = [json.loads(line) for line in _data(meta).read_text(encoding="utf-8").splitlines()]
    results = [json.loads(line) for line in out.splitlines()]
    assert [len(r["label"]) for r in results] == [len(gold) for _, gold in records]
    # each token beside its label: the element's token string (its first column, kind A)
    assert [r["tokens"] for r in results] == [[element[0] for element in seq] for seq, _ in records]
    assert all(list(r) == ["tokens", "label", "confidence"] for r in results)
    code, out = run_in_process(
        capsys, "apply", str(tmp_path / "m"), str(_data(meta)), "--labeled", "--distribution"
    )
    assert code == 0
    labels = service.load_model(str(tmp_path / "m")).labels
    for line in map(json.loads, out.splitlines()):
        assert len(line["distribution"]) == len(line["tokens"]) == len(line["label"])
        for label, confidence, distribution in zip(line["label"], line["confidence"], line["distribution"]):
            assert list(distribution) == labels  # one {label: probability} per token, label order
            assert distribution[label] == pytest.approx(confidence, rel=1e-6)  # the chosen label's
            assert sum(distribution.values()) == pytest.approx(1.0, abs=1e-4)


def test_a_bad_meta_path_exits_1_with_a_message(tmp_path: Path, capsys, caplog) -> None:
    missing = tmp_path / "nothing.meta.json"
    run = lfengine("describe", str(missing), "--json")
    assert run.returncode == 1
    assert run.stdout == ""
    assert str(missing) in run.stderr and "meta file not found" in run.stderr
    assert "Traceback" not in run.stderr
    code, out = run_in_process(capsys, "train", str(missing), str(tmp_path / "m"))
    assert code == 1 and out == ""
    assert f"{missing}: meta file not found" in caplog.text
    assert not (tmp_path / "m").exists()


def test_a_missing_model_and_a_bad_data_line_exit_1(
    trained: tuple[Path, dict], tmp_path: Path, capsys, caplog
) -> None:
    model_dir, _ = trained
    code, out = run_in_process(capsys, "apply", str(tmp_path / "no-model"), str(tmp_path / "x.json"))
    assert code == 1 and out == ""
    assert "does not exist" in caplog.text
    bad = tmp_path / "bad.data.json"
    bad.write_text('[[["word"], 0.5, true], "sport"]\n[[["word"], 0.5], "sport"]\n', encoding="utf-8")
    caplog.clear()
    code, out = run_in_process(capsys, "evaluate", str(model_dir), str(bad))
    assert code == 1 and out == ""
    assert f"{bad}:2" in caplog.text and "wrong number of feature values" in caplog.text


@pytest.mark.parametrize("value", ["0", "-5", "4097", "lots"])
def test_serve_refuses_a_message_limit_out_of_range_with_a_usage_error(value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--max-message-mb", value])
    assert exited.value.code == 2 and "--max-message-mb" in capsys.readouterr().err
