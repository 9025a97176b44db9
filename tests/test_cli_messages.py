"""What a new user reads (issue 20): warnings that are true, one-line errors instead of
tracebacks, honest end-of-training lines, --help without torch, one confidence per label."""

from __future__ import annotations

import ast
import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from timeouts import scaled

from lfengine import cli
from lfengine.builder.config import TRAINING_SETTINGS, ModelConfig
from lfengine.cli.reports import end_block, render_model_training
from lfengine.cli.train import resume_command
from lfengine.data.synthetic import write_classification_corpus, write_sequence_corpus

REPO = Path(__file__).resolve().parent.parent
#: The modules that run a training; the settings they read are the training's (not the network's).
TRAINING_MODULES = (
    "training/trainer.py",
    "training/input_noise.py",
    "data/parts.py",  # each part's training noise (DataPart.noise), which input_noise applies
    "training/training_run.py",
    "builder/base.py",
)


def _data(meta: Path) -> Path:
    return meta.with_name(meta.name.replace(".meta.", ".data."))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(meta file, model dir) of a one-epoch classifier."""
    meta = write_classification_corpus(tmp_path_factory.mktemp("messages"), 60, seed=3)
    model = meta.parent / "model"
    assert cli.main(["train", str(meta), str(model), "--max-epochs", "1", "--threads", "1", "-q"]) == 0
    return meta, model


# --- item 7 -----------------------------------------------------------------------------------
def test_help_needs_neither_torch_nor_numpy() -> None:
    code = (
        "import sys, lfengine.cli as c; c.build_parser().format_help(); "
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"  # each costs 0.1-1.7 CPU s at every start


# --- item 1 -----------------------------------------------------------------------------------
def _config_reads(path: Path) -> set[str]:
    """ModelConfig fields read as ``cfg.X``, ``config.X`` or ``<...>.config.X`` in a source file."""
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    reads = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in fields:
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
            if name in ("cfg", "config"):
                reads.add(node.attr)
    return reads


def test_training_settings_are_the_settings_the_training_code_reads() -> None:
    read = set().union(*(_config_reads(REPO / "lfengine" / m) for m in TRAINING_MODULES))
    assert read - {"module"} == set(TRAINING_SETTINGS) - {"module"}


def test_a_training_setting_is_not_called_ignored(lfdata: Path, caplog: pytest.LogCaptureFixture) -> None:
    meta = str(lfdata / "seq-pos2.meta.json")
    caplog.set_level(logging.WARNING)
    args = ["describe", meta, "--json", "--set", "unk_replace=0.5", "--set", "lr_decay=0.5"]
    args += ["--set", "es_min_delta=0.01", "--set", "word_dropout=0.1", "--set", "oov_untrained=false"]
    assert cli.main(args) == 0
    assert "is ignored" not in caplog.text
    caplog.clear()
    assert cli.main(["describe", meta, "--json", "--set", "hidden_size=10"]) == 0  # a classifier's
    assert "setting hidden_size is ignored: the SequenceTagger network does not use it" in caplog.text


def test_the_text_cnn_calls_dropout_and_hidden_size_ignored(
    lfdata: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The text CNN feeds its pooled features to the label layer: no hidden layer for dropout and
    hidden_size to act on (--set dropout=0.7 trained the same model, seed for seed)."""
    meta = str(lfdata / "class-ngram-sp1.meta.json")
    caplog.set_level(logging.WARNING)
    assert cli.main(["describe", meta, "--json", "--set", "dropout=0.7", "--set", "hidden_size=50"]) == 0
    for name in ("dropout", "hidden_size"):
        assert f"setting {name} is ignored: the Classifier network does not use it" in caplog.text
    caplog.clear()
    assert cli.main(["describe", meta, "--json", "--set", "dropout=0.7", "--set", "hidden_layers=1"]) == 0
    assert "is ignored" not in caplog.text


# --- item 2 -----------------------------------------------------------------------------------
def _one_line_error(args: list[str], capsys: pytest.CaptureFixture, caplog) -> str:
    caplog.clear()
    assert cli.main(args) == 1
    assert capsys.readouterr().out == ""
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    return errors[0]


def test_outputs_that_cannot_be_written_are_one_line_errors(
    classifier: tuple[Path, Path], tmp_path: Path, capsys, caplog
) -> None:
    meta, model = classifier
    nodir = tmp_path / "nodir"
    message = _one_line_error(["plot", str(model), "-o", str(nodir / "x.svg")], capsys, caplog)
    assert f"the folder {nodir} does not exist" in message
    args = ["evaluate", str(model), str(_data(meta)), "--predictions", str(nodir / "p.tsv")]
    assert f"the folder {nodir} does not exist" in _one_line_error(args, capsys, caplog)
    message = _one_line_error(["eject", str(model), "-o", str(nodir / "net.py")], capsys, caplog)
    assert f"the folder {nodir} does not exist" in message
    message = _one_line_error(["eject", str(model), "-o", str(tmp_path)], capsys, caplog)
    assert "name a .py file" in message


def test_a_name_too_long_for_the_file_system_is_a_one_line_error(
    classifier: tuple[Path, Path], tmp_path: Path, capsys, caplog
) -> None:
    """Once an OSError traceback ("File name too long") from the model-directory checks."""
    meta, model = classifier
    too_long = tmp_path / ("m" * 300)
    message = _one_line_error(["train", str(meta), str(too_long), "--max-epochs", "1"], capsys, caplog)
    assert "a name of 300 bytes in the path (the file system allows 255)" in message
    message = _one_line_error(["evaluate", str(too_long), str(_data(meta))], capsys, caplog)
    assert message.endswith("File name too long (check the path, its permissions and the free space)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_folder_is_a_one_line_error(
    classifier: tuple[Path, Path], tmp_path: Path, capsys, caplog
):
    _, model = classifier
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        message = _one_line_error(["eject", str(model), "-o", str(locked / "net.py")], capsys, caplog)
    finally:
        locked.chmod(0o700)
    assert "not writable" in message


# --- item 6 -----------------------------------------------------------------------------------
def test_end_block_counts_epochs_and_says_which_model_was_kept() -> None:
    base = {"model_dir": "m", "seconds": 3.0, "stopped": "max-epochs"}
    one = end_block({**base, "epochs": 1, "best_epoch": 1, "best": {"accuracy": 0.5}})
    assert "after 1 epoch," in one and "best epoch  1: accuracy 0.5000" in one
    unvalidated = end_block({**base, "epochs": 3, "best_epoch": 0, "best": {}})  # --valsize 0
    assert "after 3 epochs," in unvalidated and "best epoch" not in unvalidated
    assert "model kept  the last epoch's model (epoch 3; nothing was validated)" in unvalidated
    described = render_model_training({"epochs": 3, "best_epoch": 0, "best": {}, "stopped": "max-epochs"})
    assert "best epoch" not in described  # describe MODEL_DIR of a --valsize 0 model
    assert "model kept   the last epoch's model (epoch 3; nothing was validated)" in described


def test_the_resume_command_keeps_where_and_how_the_run_ran() -> None:
    args = cli.build_parser().parse_args(["train", "a b.meta.json", "m", "--threads", "2", "--device", "cpu"])
    assert resume_command(args) == "lfengine train 'a b.meta.json' m --resume --device cpu --threads 2"


def test_a_stop_file_ends_with_the_resume_hint(tmp_path: Path, capsys) -> None:
    meta = write_classification_corpus(tmp_path, 40, seed=2)
    stop = tmp_path / "halt"
    stop.touch()  # present from the start: the run stops after its first batch
    args = ["train", str(meta), str(tmp_path / "m"), "--threads", "1", "--stop-file", str(stop), "-q"]
    assert cli.main(args) == 0
    out, err = capsys.readouterr()
    assert "the stop file appeared" in out
    assert err.rstrip().splitlines()[-1].endswith(f"{tmp_path / 'm'} --resume --threads 1")


def test_early_stopping_under_min_delta_does_not_deny_the_best_epoch(tmp_path: Path, caplog) -> None:
    meta = write_classification_corpus(tmp_path, 60, seed=4)
    caplog.set_level(logging.INFO)
    args = ["train", str(meta), str(tmp_path / "m"), "--threads", "1", "--max-epochs", "6", "-q"]
    args += ["--es-patience", "0", "--set", "es_min_delta=0.9"]
    assert cli.main(args) == 0
    stops = [r.getMessage() for r in caplog.records if r.getMessage().startswith("early stopping")]
    assert len(stops) == 1
    assert "no gain of at least es_min_delta 0.9 for 1 validation;" in stops[0]
    assert "no improvement" not in stops[0]
    assert "embedding rows (trained / pretrained only / mapped to OOV): {}" not in caplog.text


# --- item 9 -----------------------------------------------------------------------------------
def test_a_crf_confidence_is_its_distribution_entry(tmp_path: Path, capsys) -> None:
    meta = write_sequence_corpus(tmp_path, 24, seed=2)
    args = ["train", str(meta), str(tmp_path / "m"), "--max-epochs", "1", "--threads", "1", "-q"]
    assert cli.main([*args, "--set", "crf=true"]) == 0
    capsys.readouterr()
    assert cli.main(["apply", str(tmp_path / "m"), str(_data(meta)), "--labeled", "--distribution"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines
    for line in lines:
        for label, confidence, distribution in zip(line["label"], line["confidence"], line["distribution"]):
            assert distribution[label] == confidence  # exactly: one rounding for both


# --- item 5 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["describe", "eject"])
def test_describe_and_eject_take_no_run_only_options(command: str, capsys) -> None:
    parser = cli.build_parser().commands[command]
    flags = {s for action in parser._actions for s in action.option_strings}
    assert "--set" in flags and "--max-epochs" in flags  # what shapes the network and its settings
    assert not flags & {"--threads", "--device", "--resume", "--stop-file", "--report-every-batches"}
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "x.meta.json", "-o", "x.py", "--threads", "2"])
    assert (
        exited.value.code == 2 and "--threads" in capsys.readouterr().err.split("unrecognized arguments:")[1]
    )


def test_training_help_states_every_rule() -> None:
    text = cli.build_parser().commands["train"].format_help()
    assert "5 below 5000, else 3" in " ".join(text.split())  # es_patience's rule (its docstring)
    assert "validate on the file's last items, as --valsplit tail does" in " ".join(text.split())


# --- item 4 -----------------------------------------------------------------------------------
def _error(args: list[str], caplog) -> str:
    caplog.clear()
    assert cli.main(args) == 1
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_swapped_train_arguments_get_a_hint(classifier: tuple[Path, Path], tmp_path: Path, caplog) -> None:
    meta, _ = classifier
    message = _error(["train", str(tmp_path / "new-model"), str(meta)], caplog)
    assert (
        f"the arguments are swapped: the meta file comes first ({meta} {tmp_path / 'new-model'})" in message
    )


def test_a_meta_file_name_hint_names_no_missing_option(tmp_path: Path, caplog) -> None:
    meta = write_classification_corpus(tmp_path, 20, seed=1)
    renamed = meta.rename(tmp_path / "corpus.json")
    message = _error(["train", str(renamed), str(tmp_path / "m")], caplog)
    assert "rename it to NAME.meta.json" in message and "explicitly" not in message


def test_apply_errors_name_the_file_and_line_and_hint_from_that_line(
    classifier: tuple[Path, Path], tmp_path: Path, caplog
) -> None:
    meta, model = classifier
    good = [json.loads(line)[0] for line in _data(meta).read_text(encoding="utf-8").splitlines()[:2]]
    data = tmp_path / "three.json"
    data.write_text("".join(json.dumps(r) + "\n" for r in [*good, ["a", "b"]]), encoding="utf-8")
    message = _error(["apply", str(model), str(data)], caplog)
    assert message.startswith(f"{data}:3: wrong number of feature values")  # line 3, not instance 2
    assert "--labeled" not in message  # ["a", "b"] is two feature values, not [features, target]
    assert "trained on 3 features per instance, this file has 2" in message


def test_json_errors_give_the_column_an_editor_shows(classifier: tuple[Path, Path], tmp_path: Path, caplog):
    _, model = classifier
    broken = tmp_path / "broken.meta.json"
    broken.write_text('{"featureInfo": {"nodes": [1, 2,]}}', encoding="utf-8")
    assert "at column 33" in _error(["describe", str(broken)], caplog)
    data = tmp_path / "bytes.json"
    data.write_bytes('["ää", '.encode() + b"\xff]\n")
    assert "byte 0xff at column 8" in _error(["apply", str(model), str(data)], caplog)
