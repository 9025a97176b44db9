"""Reports and hints of the command line on real trained models: plot, evaluate's predictions and
warnings, describe MODEL_DIR, train.log, --config, Ctrl-C, stdin, broken pipes, and a hint for
each usual mistake."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lfengine import cli
from lfengine.cli.evaluate import evaluation_warnings
from lfengine.data.synthetic import write_classification_corpus, write_sequence_corpus
from lfengine.evaluation.metrics import classification_report
from lfengine.storage import store

REPO = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"


def data_of(meta: Path) -> Path:
    return meta.with_name(meta.name.replace(".meta.", ".data."))


def run_main(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(list(args))
    return code, capsys.readouterr().out


def lfengine(*args: str, stdin: bytes | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lfengine", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reports")


def train(meta: Path, model: Path, *flags: str) -> None:
    """`lfengine train` in this process, quickly: one thread, the result as JSON."""
    assert cli.main(["train", str(meta), str(model), "--threads", "1", "--json", *flags]) == 0


@pytest.fixture(scope="module")
def tagger(root: Path) -> tuple[Path, Path]:
    meta = write_sequence_corpus(root / "seq", 60, seed=3)
    train(meta, root / "tagger", "--max-epochs", "3", "--validate-every-batches", "2")
    return meta, root / "tagger"


@pytest.fixture(scope="module")
def classifier(root: Path) -> tuple[Path, Path]:
    meta = write_classification_corpus(root / "cls", 150, seed=4)
    train(meta, root / "classifier", "--max-epochs", "2", "--seed", "3", "--set", "hidden_size=40")
    return meta, root / "classifier"


def test_plot_writes_an_svg_with_one_point_per_validation(tagger, capsys, tmp_path: Path) -> None:
    _, model = tagger
    history = store.read_model_json(model)["metadata"]["training"]["history"]
    validations = [h for h in history if h["validation"]]
    assert len(validations) > 3  # every 2 batches and at each epoch's end
    code, out = run_main(capsys, "plot", str(model), "-o", str(tmp_path / "curves.svg"))
    assert code == 0 and f"({len(history)} validations)" in out
    svg = ET.parse(tmp_path / "curves.svg").getroot()
    assert svg.tag == f"{SVG}svg"
    points = [c.get("data-series") for c in svg.iter(f"{SVG}circle")]
    for series in ("validation loss", "accuracy", "span_f1", "train loss"):
        assert points.count(series) == len(validations), series
    assert len(list(svg.iter(f"{SVG}polyline"))) >= 4
    assert sum(1 for line in svg.iter(f"{SVG}line") if line.get("class") == "best") == 2  # one per panel
    best = store.read_model_json(model)["metadata"]["training"]["best_epoch"]
    assert any(f"best: epoch {best}" in (t.text or "") for t in svg.iter(f"{SVG}text"))


def test_plot_refuses_other_formats_with_a_reason(tagger, capsys, caplog, tmp_path: Path) -> None:
    code, _ = run_main(capsys, "plot", str(tagger[1]), "-o", str(tmp_path / "curves.png"))
    assert code == 1 and "writes SVG only" in caplog.text


def test_predictions_of_a_tagger_in_conll_columns(tagger, capsys, tmp_path: Path) -> None:
    meta, model = tagger
    target = tmp_path / "pred.conll"
    code, out = run_main(
        capsys, "evaluate", str(model), str(data_of(meta)), "--predictions", str(target), "--json"
    )
    assert code == 0
    report = json.loads(out)
    records = [json.loads(line) for line in data_of(meta).read_text(encoding="utf-8").splitlines()]
    blocks = target.read_text(encoding="utf-8").split("\n\n")[:-1]
    assert len(blocks) == len(records)
    labels = set(report["confusion"]["labels"])
    for block, (features, gold) in zip(blocks, records):
        rows = [line.split("\t") for line in block.strip("\n").split("\n")]
        assert [r[0] for r in rows] == [element[0] for element in features]  # the token column
        assert [r[1] for r in rows] == gold
        assert all(r[2] in labels and 0.0 <= float(r[3]) <= 1.0 for r in rows)
    tokens = sum(len(g) for _, g in records)
    assert sum(map(sum, report["confusion"]["matrix"])) == tokens == report["instances"]


def test_predictions_of_a_classifier_as_tsv(classifier, capsys, tmp_path: Path) -> None:
    meta, model = classifier
    target = tmp_path / "pred.tsv"
    code, _ = run_main(capsys, "evaluate", str(model), str(data_of(meta)), "--predictions", str(target))
    assert code == 0
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "line\tgold\tpredicted\tconfidence"
    gold = [json.loads(line)[1] for line in data_of(meta).read_text(encoding="utf-8").splitlines()]
    assert [line.split("\t")[1] for line in lines[1:]] == gold


def test_a_single_label_model_is_warned_about() -> None:
    report = classification_report([0, 1, 1, 2], [1, 1, 1, 1], ["O", "PER|B", "PER|I"])
    warnings = evaluation_warnings(report, {}, __file__)
    assert len(warnings) == 1 and "predicts 'PER|B' for everything" in warnings[0]
    assert evaluation_warnings(classification_report([0, 1], [0, 1], ["a", "b"]), {}, __file__) == []


def test_describe_model_dir_tells_how_it_was_trained(classifier, capsys) -> None:
    meta, model = classifier
    code, out = run_main(capsys, "describe", str(model), "--json")
    training = json.loads(out)["training"]
    assert code == 0
    assert training["data_file"] == str(data_of(meta).resolve())
    assert training["data_sha256"] == hashlib.sha256(data_of(meta).read_bytes()).hexdigest()
    assert training["started"] <= training["finished"] and training["stopped"] == "max-epochs"
    assert training["best"] and training["best_epoch"] >= 1
    code, out = run_main(capsys, "describe", str(model))
    assert f"data sha256  {training['data_sha256']}" in out and "stopped by reached max_epochs" in out


def test_train_log_has_a_header_and_a_result_per_run(classifier, capsys, root: Path) -> None:
    meta, _ = classifier
    model = root / "twice"
    for _ in range(2):
        train(meta, model, "--max-epochs", "1")
    log = store.model_paths(model).log.read_text(encoding="utf-8")
    assert log.count("\ncommand: ") == 2 and log.count("\nresult: {") == 2
    for needed in ("versions: lfengine", "torch", "options: {", "architecture:", "instances for training"):
        assert needed in log
    assert log.index("architecture:") < log.index("validation loss") < log.index("result: {")


def test_config_from_a_model_trains_the_same_model_again(classifier, root: Path) -> None:
    meta, model = classifier
    again = root / "again"
    assert cli.main(["train", str(meta), str(again), "--config", str(model), "--json"]) == 0
    first, second = (store.read_model_json(m)["metadata"] for m in (model, again))
    assert second["config"] == first["config"] and second["config"]["hidden_size"] == 40
    losses = [[h["train_loss"] for h in m["training"]["history"]] for m in (first, second)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)  # same machine, same seed: the same run


def test_config_file_with_protocol_option_names(classifier, capsys, tmp_path: Path) -> None:
    config = tmp_path / "options.json"
    config.write_text(json.dumps({"max_epochs": 4, "batch_size": 9, "model": {"hidden_size": 33}}))
    code, out = run_main(
        capsys, "describe", str(classifier[0]), "--config", str(config), "--max-epochs", "5", "--json"
    )
    hyper = json.loads(out)["hyperparameters"]
    assert code == 0 and hyper["max_epochs"]["value"] == 5 and hyper["batch_size"]["value"] == 9
    assert hyper["hidden_size"] == {"value": 33, "source": "option"}


def test_ctrl_c_keeps_the_model_exits_130_and_says_how_to_resume(classifier, root: Path) -> None:
    meta, _ = classifier
    model = root / "interrupted"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lfengine",
            "train",
            str(meta),
            str(model),
            "--max-epochs",
            "500",
            "--threads",
            "1",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not store.model_paths(model).metrics.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert f"lfengine train {meta} {model} --resume" in err
    assert "interrupted (Ctrl-C)" in out
    assert (model / "model.json").is_file()


def test_stdin_and_a_closed_pipe(classifier, tmp_path: Path) -> None:
    meta, model = classifier
    labeled = data_of(meta).read_bytes()
    unlabeled = b"".join(json.dumps(json.loads(line)[0]).encode() + b"\n" for line in labeled.splitlines())
    run = lfengine("apply", str(model), "-", stdin=unlabeled)
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == len(labeled.splitlines())
    run = lfengine("evaluate", str(model), "-", "--json", stdin=labeled)
    assert run.returncode == 0 and json.loads(run.stdout)["instances"] == len(labeled.splitlines())
    # A reader that stops after one line: the engine exits quietly, without a traceback.
    many = tmp_path / "many.json"
    many.write_bytes(unlabeled * 40)
    with open(many, "rb") as source, open(tmp_path / "stderr", "wb") as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", "lfengine", "apply", str(model), "-"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        child.stdout.readline()
        child.stdout.close()
        assert child.wait(timeout=120) == 141
    assert b"Traceback" not in (tmp_path / "stderr").read_bytes()


# --- one test per hint --------------------------------------------------------------------------
def test_hint_labeled_file_without_labeled(classifier, capsys, caplog) -> None:
    meta, model = classifier
    code, out = run_main(capsys, "apply", str(model), str(data_of(meta)))
    assert code == 1 and out == ""
    assert (
        "hint: the lines look like [features, target]: this is a labeled file; add --labeled" in caplog.text
    )


def test_hint_sequences_given_to_a_classifier(classifier, tagger, capsys, caplog) -> None:
    code, _ = run_main(capsys, "evaluate", str(classifier[1]), str(data_of(tagger[0])))
    assert code == 1
    assert (
        "hint: the line holds a sequence of" in caplog.text
        and "the model classifies instances" in caplog.text
    )


def test_hint_instances_given_to_a_tagger(classifier, tagger, capsys, caplog) -> None:
    code, _ = run_main(capsys, "evaluate", str(tagger[1]), str(data_of(classifier[0])))
    assert code == 1 and "the model tags sequences" in caplog.text


def test_hint_data_from_another_export(classifier, capsys, caplog, tmp_path: Path) -> None:
    meta, model = classifier
    other = tmp_path / "other.data.json"
    lines = [json.loads(line) for line in data_of(meta).read_text(encoding="utf-8").splitlines()]
    other.write_text("".join(json.dumps([r[0] + [1.0], r[1]]) + "\n" for r in lines), encoding="utf-8")
    code, _ = run_main(capsys, "evaluate", str(model), str(other))
    assert code == 1
    assert "the model was trained on 3 features per instance, this file has 4" in caplog.text
    assert "another meta file" in caplog.text


def test_hint_swapped_arguments(classifier, capsys, caplog, tmp_path: Path) -> None:
    meta, model = classifier
    code, _ = run_main(capsys, "apply", str(data_of(meta)), str(model))
    assert code == 1 and "hint: the arguments are swapped: the model directory comes first" in caplog.text
    caplog.clear()
    code, _ = run_main(capsys, "train", str(model), str(meta))
    assert code == 1 and "hint: the arguments are swapped: the meta file comes first" in caplog.text
    caplog.clear()
    code, _ = run_main(capsys, "train", str(data_of(meta)), str(tmp_path / "m"))
    assert code == 1 and f"hint: give its meta file, {meta}" in caplog.text
    assert not (tmp_path / "m").exists()


def test_hint_stdin_is_for_data_not_models(classifier, capsys, caplog) -> None:
    code, _ = run_main(capsys, "apply", "-", str(classifier[1]))
    assert code == 1 and "- (stdin) is for the data file" in caplog.text


def test_quiet_after_the_subcommand_keeps_info_off_the_terminal_not_out_of_train_log(
    tagger, root: Path
) -> None:
    meta, _ = tagger
    model = root / "quiet"
    run = lfengine("train", str(meta), str(model), "--max-epochs", "1", "--threads", "1", "-q")
    assert run.returncode == 0, run.stderr
    assert b" INFO " not in run.stderr
    assert " INFO " in store.model_paths(model).log.read_text(encoding="utf-8")


def test_plot_escapes_every_name_it_writes(tmp_path: Path) -> None:
    """Issue 19 item 9: metric names and the best epoch come from model.json (anyone's data); in
    an attribute or as text, none becomes markup (the old escape left quotes alone)."""
    from lfengine.cli.plot import render_svg

    hostile = [
        '"><script>alert(1)</script><x a="',
        "' onload='alert(2)",
        "\x1b[31mred\x00\x07</title>",
    ]
    history = [
        {
            "epoch": e,
            "batches": 2 * e,
            "train_loss": 1.0 / e,
            "best": e == 2,
            "validation": {n: 0.5 for n in hostile},
        }
        for e in (1, 2)
    ]
    training = {"history": history, "best_epoch": '2"/><script>alert(3)</script>'}
    document, _ = render_svg(training, title='<model "dir">')
    svg = ET.fromstring(document)  # well-formed XML despite NUL and ESC in a name
    tags = {element.tag for element in svg.iter()}
    assert f"{SVG}script" not in tags and f"{SVG}x" not in tags
    assert {c.get("data-series") for c in svg.iter(f"{SVG}circle")} >= set(hostile[:2])
    assert all(not key.startswith("on") for element in svg.iter() for key in element.attrib)
    texts = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
    assert hostile[0] in texts and '<model "dir">' in texts and "<script>alert(3)</script>" in texts


TERMINAL_CONTROLS = ("\x1b", "\x9b", "\r", "\x07", "\u202e")


def test_labels_with_terminal_controls_are_printed_escaped(tmp_path: Path, capsys) -> None:
    """Issue 19 item 11: a label that would clear the screen (ESC [ 2 J, C1 CSI), move the cursor
    (CR), ring the bell or reverse the text reaches the terminal escaped, from describe, train
    (its blocks and the log records on stderr) and evaluate."""
    meta = write_classification_corpus(tmp_path, 60, seed=2)
    data = data_of(meta)
    evil = {"sport": "sport\x1b[2J\x1b]0;owned\x07", "science": "sci\x9b31m\rence\u202e"}

    def relabel(value):  # the meta file's targetStats name the labels too
        if isinstance(value, dict):
            return {evil.get(k, k): relabel(v) for k, v in value.items()}
        if isinstance(value, list):
            return [relabel(v) for v in value]
        return evil.get(value, value) if isinstance(value, str) else value

    meta.write_text(json.dumps(relabel(json.loads(meta.read_text(encoding="utf-8")))), encoding="utf-8")
    records = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    data.write_text(
        "\n".join(json.dumps([r[0], evil.get(r[1], r[1])], ensure_ascii=False) for r in records) + "\n",
        encoding="utf-8",
    )
    model = tmp_path / "model"
    trained = lfengine("train", str(meta), str(model), "--max-epochs", "1", "--threads", "1")
    assert trained.returncode == 0, trained.stderr
    said = [trained.stdout.decode(), trained.stderr.decode()]
    for command in (["describe", str(model)], ["evaluate", str(model), str(data)]):
        code, out = run_main(capsys, *command)
        assert code == 0
        said.append(out)
    for text in said:
        assert not any(c in text for c in TERMINAL_CONTROLS), repr(text[:2000])
    for text in said[2:]:  # describe, evaluate
        assert "sport\\x1b[2J" in text and "sci\\x9b31m" in text  # evaluate cuts long names
    assert "sport\\x1b[2J" in said[0]  # train's start block lists the labels
