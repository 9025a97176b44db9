"""Training through lfengine.service on small generated corpora: reproducibility, resume, stop
signals, validation choices, bad lines, no-train, regression and progress events."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from timeouts import scaled

from lfengine import service
from lfengine.data.synthetic import (
    LfAttribute,
    write_classification_corpus,
    write_lf,
    write_sequence_corpus,
)
from lfengine.errors import DataLineError
from lfengine.options import TrainOptions
from lfengine.storage import store

REPO = Path(__file__).resolve().parent.parent


def _history(model_dir: Path) -> list[dict]:
    """model.json's training history without the wall-clock stamps."""
    metadata, _ = store.load_model_dir(model_dir)
    clocks = ("time", "seconds", "cpu_seconds")
    return [{k: v for k, v in e.items() if k not in clocks} for e in metadata["training"]["history"]]


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return store.load_model_dir(model_dir)[1]


@pytest.fixture(scope="module")
def cls_meta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_classification_corpus(tmp_path_factory.mktemp("cls"), 240, seed=5)


@pytest.fixture(scope="module")
def seq_meta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sequence_corpus(tmp_path_factory.mktemp("seq"), 80, seed=3)


# --- reproducibility ---------------------------------------------------------------------------
def test_same_seed_gives_identical_metrics_and_weights(cls_meta: Path, tmp_path: Path) -> None:
    options = dict(max_epochs=2, threads=1, device="cpu")  # determinism is promised on the CPU
    first = service.train(str(cls_meta), str(tmp_path / "a"), TrainOptions(seed=7, **options))
    second = service.train(str(cls_meta), str(tmp_path / "b"), TrainOptions(seed=7, **options))
    other = service.train(str(cls_meta), str(tmp_path / "c"), TrainOptions(seed=8, **options))

    assert first["best"] == second["best"]
    assert _history(tmp_path / "a") == _history(tmp_path / "b")
    wa, wb, wc = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert wa.keys() == wb.keys() == wc.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert _history(tmp_path / "a") != _history(tmp_path / "c")
    assert other["epochs"] == 2


# --- resume ----------------------------------------------------------------------------------
def _cli_train(meta: Path, model_dir: Path, flags: list[str]) -> list[str]:
    return [sys.executable, "-m", "lfengine", "train", str(meta), str(model_dir), *flags]


CLI_ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _kill_cli_training_once(meta: Path, model_dir: Path, flags: list[str], ready: Callable[[], bool]) -> int:
    """Start a CLI training, SIGKILL it as soon as ``ready()``; returns the dead pid."""
    child = subprocess.Popen(
        _cli_train(meta, model_dir, flags),
        cwd=REPO,
        env=CLI_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + scaled(60)
        while not ready() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert ready(), "the training never wrote what the test waits for"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the training ended before it could be killed"
    return child.pid


def _cli_resume(meta: Path, model_dir: Path, flags: list[str]) -> subprocess.CompletedProcess:
    resumed = subprocess.run(
        _cli_train(meta, model_dir, [*flags, "--resume", "--json"]),
        cwd=REPO,
        env=CLI_ENV,
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert resumed.returncode == 0, resumed.stderr
    return resumed


def test_resume_after_sigkill_continues_and_matches_uninterrupted(seq_meta: Path, tmp_path: Path) -> None:
    """SIGKILL a CLI training once its first checkpoint exists, resume it, and compare with a
    run that was never interrupted: the same seed must give the same history and weights."""
    epochs = 12
    flags = ["--max-epochs", str(epochs), "--threads", "1", "--device", "cpu"]
    flags += ["--es-patience", "100", "--seed", "4"]
    killed_dir = tmp_path / "killed"
    _kill_cli_training_once(
        seq_meta, killed_dir, flags, lambda: store.checkpoint_reference(killed_dir) is not None
    )
    stopped_at = store.load_checkpoint(killed_dir)["state"]["epoch"]
    assert 1 <= stopped_at < epochs

    resumed = _cli_resume(seq_meta, killed_dir, flags)
    assert f"resuming after epoch {stopped_at} " in resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["epochs"] == epochs and result["stopped"] == "max-epochs"

    full = service.train(
        str(seq_meta),
        str(tmp_path / "full"),
        TrainOptions(max_epochs=epochs, threads=1, device="cpu", es_patience=100, seed=4),
    )
    assert result["best"] == full["best"]
    history = _history(killed_dir)
    assert [e["epoch"] for e in history] == list(range(1, epochs + 1))
    assert history == _history(tmp_path / "full")
    resumed_weights, full_weights = _weights(killed_dir), _weights(tmp_path / "full")
    assert all(torch.equal(resumed_weights[k], full_weights[k]) for k in full_weights)


def test_cli_resume_after_a_kill_before_the_first_checkpoint_completes(
    seq_meta: Path, tmp_path: Path
) -> None:
    """SIGKILL a CLI training as soon as it has started writing into the model directory (as a
    rule before its first checkpoint), with a write's temporary file left behind: --resume must
    complete, start afresh when there was nothing to resume, and leave no temporary file."""
    model_dir = tmp_path / "killed"
    flags = ["--max-epochs", "2", "--threads", "1", "--device", "cpu"]
    dead = _kill_cli_training_once(seq_meta, model_dir, flags, (model_dir / "train.log").exists)
    (model_dir / f".checkpoint.pt.{dead}.89abcdef.tmp").write_bytes(b"cut short")
    had_checkpoint = store.checkpoint_reference(model_dir) is not None
    resumed = _cli_resume(seq_meta, model_dir, flags)
    assert ("resuming after epoch" if had_checkpoint else "starting afresh") in resumed.stderr
    assert json.loads(resumed.stdout)["epochs"] == 2
    assert not list(model_dir.glob(".*.tmp"))
    assert service.load_model(str(model_dir)).labels


def test_cancel_mid_epoch_then_resume_matches_uninterrupted(cls_meta: Path, tmp_path: Path) -> None:
    """A stop inside an epoch checkpoints the position in that epoch; resuming replays the rest.
    The resumed run must end exactly as a run never interrupted on the same machine: the same
    history (which epochs improved is for the CPU's rounding to decide, so it is compared, not
    written down), best metrics, final reason and weights in model.json."""
    options = dict(max_epochs=5, threads=1, device="cpu", es_patience=100, learning_rate=0.5)
    cancel = threading.Event()

    def cancel_in_epoch_four(progress: dict) -> None:
        if progress["epoch"] == 4 and progress["batch"] == 3:
            cancel.set()

    stopped = service.train(
        str(cls_meta),
        str(tmp_path / "part"),
        TrainOptions(**options),
        on_progress=cancel_in_epoch_four,
        cancel=cancel,
    )
    assert stopped["stopped"] == "cancelled" and stopped["epochs"] == 3
    resumed = service.train(str(cls_meta), str(tmp_path / "part"), TrainOptions(**options, resume=True))
    full = service.train(str(cls_meta), str(tmp_path / "full"), TrainOptions(**options))
    assert resumed["epochs"] == full["epochs"] == 5 and resumed["stopped"] == "max-epochs"
    history = _history(tmp_path / "full")
    assert [e["epoch"] for e in history] == [1, 2, 3, 4, 5]
    assert _history(tmp_path / "part") == history
    assert resumed["best"] == full["best"] and resumed["best_epoch"] == full["best_epoch"]
    metadata, _ = store.load_model_dir(tmp_path / "part")
    assert metadata["training"]["stopped"] == "max-epochs" and metadata["training"]["epochs"] == 5
    assert metadata["training"]["best_epoch"] == full["best_epoch"]
    part_weights, full_weights = _weights(tmp_path / "part"), _weights(tmp_path / "full")
    assert all(torch.equal(part_weights[k], full_weights[k]) for k in full_weights)


def test_resume_with_nothing_to_resume_starts_afresh_with_a_warning(
    cls_meta: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run killed before its first checkpoint leaves no checkpoint (and maybe no model.json)
    and stale temporary files; --resume then trains from the start (GATE reruns with the same
    options) and the leftovers of the dead writer go."""
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    dead = _dead_pid()
    stale = model_dir / f".checkpoint.pt.{dead}.0123abcd.tmp"
    stale.write_bytes(b"half a checkpoint")
    live = model_dir / f".weights.pt.{os.getpid()}.4567cdef.tmp"  # a live writer's: kept
    live.write_bytes(b"being written")
    with caplog.at_level(logging.WARNING, logger="lfengine"):
        result = service.train(
            str(cls_meta), str(model_dir), TrainOptions(resume=True, max_epochs=1, threads=1)
        )
    assert result["stopped"] == "max-epochs" and result["epochs"] == 1
    assert any("starting afresh" in r.getMessage() for r in caplog.records)
    assert not stale.exists() and live.exists()
    assert service.load_model(str(model_dir)).labels


def _dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=scaled(60))
    return child.pid


# --- stop signals ------------------------------------------------------------------------------
def test_stop_file_ends_training_keeping_the_best_model(cls_meta: Path, tmp_path: Path) -> None:
    stop_file = tmp_path / "STOP-NOW"

    def stop_in_epoch_three(progress: dict) -> None:
        if progress["epoch"] == 3 and progress["batch"] == 1:
            stop_file.touch()

    result = service.train(
        str(cls_meta),
        str(tmp_path / "m"),
        TrainOptions(max_epochs=20, threads=1, stop_file=str(stop_file), es_patience=100),
        on_progress=stop_in_epoch_three,
    )
    assert result["stopped"] == "stop-file"
    assert result["epochs"] == 2 and result["best_epoch"] in (1, 2)
    assert not stop_file.exists(), "the stop file is consumed, so the next run is not stopped at once"
    metadata, _ = store.load_model_dir(tmp_path / "m")
    assert metadata["training"]["stopped"] == "stop-file"
    assert metadata["training"]["best_epoch"] == result["best_epoch"]
    assert service.load_model(str(tmp_path / "m")).evaluate(str(cls_meta).replace(".meta.", ".data."))


def test_cancel_event_keeps_the_best_model(cls_meta: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    best_seen: list[float] = []

    def watch(progress: dict) -> None:
        if progress["metrics"]:
            best_seen.append(progress["metrics"]["accuracy"])
        if progress["epoch"] == 3:
            cancel.set()

    result = service.train(
        str(cls_meta),
        str(tmp_path / "m"),
        TrainOptions(max_epochs=20, threads=1),
        on_progress=watch,
        cancel=cancel,
    )
    assert result["stopped"] == "cancelled" and result["epochs"] == 2
    assert result["best"]["accuracy"] == max(best_seen)
    model = service.load_model(str(tmp_path / "m"))
    assert model.metadata["training"]["best"] == result["best"]


def test_cancel_before_the_first_validation_keeps_an_unvalidated_model(
    cls_meta: Path, tmp_path: Path
) -> None:
    cancel = threading.Event()
    cancel.set()
    result = service.train(
        str(cls_meta), str(tmp_path / "m"), TrainOptions(max_epochs=5, threads=1), cancel=cancel
    )
    assert result["stopped"] == "cancelled" and result["best_epoch"] == 0 and result["best"] == {}
    model = service.load_model(str(tmp_path / "m"))  # usable, and resumable
    assert model.metadata["training"]["best_epoch"] == 0


# --- validation choices -------------------------------------------------------------------------
def test_valsize_zero_trains_without_validation_and_writes_a_model(cls_meta: Path, tmp_path: Path) -> None:
    result = service.train(
        str(cls_meta), str(tmp_path / "m"), TrainOptions(valsize=0, max_epochs=2, threads=1)
    )
    assert result["stopped"] == "max-epochs" and result["epochs"] == 2
    metadata, _ = store.load_model_dir(tmp_path / "m")
    assert metadata["training"]["validation"] == 0
    assert metadata["training"]["instances"] == 240
    assert [e["validation"] for e in metadata["training"]["history"]] == [{}, {}]
    assert len(service.load_model(str(tmp_path / "m")).apply([[["word"], 0.5, True]])) == 1


def test_valfile_validates_on_the_given_file(cls_meta: Path, tmp_path: Path) -> None:
    val_meta = write_classification_corpus(tmp_path / "val", 30, seed=99)
    val_data = val_meta.with_name(val_meta.name.replace(".meta.", ".data."))
    service.train(
        str(cls_meta), str(tmp_path / "m"), TrainOptions(valfile=str(val_data), max_epochs=1, threads=1)
    )
    metadata, _ = store.load_model_dir(tmp_path / "m")
    assert metadata["training"]["instances"] == 240  # the whole data file trains
    assert metadata["training"]["validation"] == 30
    report = service.evaluate(str(tmp_path / "m"), str(val_data))
    assert metadata["training"]["history"][0]["validation"]["accuracy"] == pytest.approx(report["accuracy"])


def test_skip_bad_lines_counts_and_skips_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    meta = write_classification_corpus(tmp_path, 100, seed=2)
    data = meta.with_name(meta.name.replace(".meta.", ".data."))
    with open(data, "a", encoding="utf-8") as f:
        f.write("this is not json\n")
        f.write(json.dumps([[["a"], 1.0], "sport"]) + "\n")  # one feature short
    with pytest.raises(DataLineError) as failure:
        service.train(str(meta), str(tmp_path / "strict"), TrainOptions(max_epochs=1, threads=1))
    assert failure.value.line == 101
    with caplog.at_level(logging.WARNING):
        service.train(
            str(meta),
            str(tmp_path / "m"),
            TrainOptions(max_epochs=1, threads=1, skip_bad_lines=True, valsize=0),
        )
    assert "skipped 2 bad lines of 102" in caplog.text
    assert store.load_model_dir(tmp_path / "m")[0]["training"]["instances"] == 100


def test_no_train_describes_without_writing_a_model(cls_meta: Path, tmp_path: Path) -> None:
    result = service.train(str(cls_meta), str(tmp_path / "m"), TrainOptions(no_train=True))
    assert result["stopped"] == "no-train" and result["epochs"] == 0
    description = result["description"]
    assert description["task"] == "classification"
    assert description["architecture"]["parameters"] > 0
    assert not store.model_paths(tmp_path / "m").model_json.exists()
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").glob("*checkpoint*"))


@pytest.mark.parametrize(
    ("meta_name", "values"),
    [
        ("class-ionosphere", {}),
        ("class-ionosphere", {"valsize": 0.5}),
        ("class-ionosphere", {"valsize": 0}),
        ("class-ionosphere", {"valsize": 200}),
        ("class-ionosphere", {"valfile": "SELF"}),
        ("seq-pos1", {"valsize": 0.6}),
    ],
)
def test_describe_plans_exactly_what_train_builds(lfdata: Path, meta_name: str, values: dict) -> None:
    """describe reads no data, train does: both must choose the same settings (batch size,
    epochs, patience and learning rate follow the training size that valsize/valfile leave)."""
    meta = lfdata / f"{meta_name}.meta.json"
    if values.get("valfile") == "SELF":
        values = {"valfile": str(lfdata / f"{meta_name}.data.json")}
    options = TrainOptions(no_train=True, **values)
    described = service.describe(str(meta), options)
    trained = service.train(str(meta), "unused-model-dir", options)["description"]
    assert described["hyperparameters"] == trained["hyperparameters"]
    assert described["architecture"] == trained["architecture"]


# --- regression ----------------------------------------------------------------------------------
def _regression_corpus(directory: Path, n: int, seed: int) -> Path:
    """y = 500 + 40 x1 - 25 x2 (+ 30 when the flag is set) + small noise: far from 0 on purpose."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        x1, x2, flag = rng.gauss(0, 1), rng.uniform(-2, 2), rng.random() < 0.5
        y = 500 + 40 * x1 - 25 * x2 + (30 if flag else 0) + rng.gauss(0, 2)
        records.append([[round(x1, 4), round(x2, 4), flag], round(y, 3)])
    attributes = [
        LfAttribute("A", "x1", ann_type="", datatype="numeric"),
        LfAttribute("A", "x2", ann_type="", datatype="numeric"),
        LfAttribute("A", "flag", ann_type="", datatype="bool"),
    ]
    return write_lf(directory, "reg", attributes, records, is_sequence=False)


def test_regression_end_to_end_in_original_units(tmp_path: Path) -> None:
    meta = _regression_corpus(tmp_path, 300, seed=1)
    result = service.train(
        str(meta), str(tmp_path / "m"), TrainOptions(max_epochs=25, threads=1, learning_rate=0.01)
    )
    assert "mse" in result["best"]
    model = service.load_model(str(tmp_path / "m"))
    assert model.task == "regression" and model.labels == []
    report = model.evaluate(str(meta).replace(".meta.", ".data."))
    assert {"mse", "mae", "r2"} <= set(report)
    assert report["r2"] > 0.9
    predictions = model.apply([[0.0, 0.0, False], [1.0, -1.0, True]])
    assert all(isinstance(p["label"], float) for p in predictions)
    assert predictions[0]["label"] == pytest.approx(500, abs=25)  # original units, not z-scores
    assert predictions[1]["label"] == pytest.approx(595, abs=25)


# --- progress ----------------------------------------------------------------------------------
def test_progress_events_have_the_documented_fields(cls_meta: Path, tmp_path: Path) -> None:
    events: list[dict] = []
    service.train(
        str(cls_meta), str(tmp_path / "m"), TrainOptions(max_epochs=2, threads=1), on_progress=events.append
    )
    keys = {"epoch", "batch", "batches", "instances", "loss", "metrics", "elapsed", "eta"}
    assert events and all(set(e) == keys for e in events)
    assert [e["epoch"] for e in events] == sorted(e["epoch"] for e in events)
    with_metrics = [e for e in events if e["metrics"]]
    assert [e["epoch"] for e in with_metrics] == [1, 2]
    assert events[-1]["instances"] == 2 * 216 and events[-1]["eta"] == 0.0


def test_a_crash_before_the_first_validation_can_be_resumed(cls_meta: Path, tmp_path: Path) -> None:
    """Validating every second epoch, a run that dies in epoch 2 has only epoch 1 behind it; the
    directory must still hold what --resume needs, and the resumed run must match a clean one."""
    options = dict(max_epochs=4, threads=1, device="cpu", validate_every_epochs=2, es_patience=100)

    class Crash(Exception):
        pass

    def crash_in_epoch_two(progress: dict) -> None:
        if progress["epoch"] == 2:
            raise Crash

    with pytest.raises(Crash):
        service.train(
            str(cls_meta), str(tmp_path / "part"), TrainOptions(**options), on_progress=crash_in_epoch_two
        )
    assert store.load_checkpoint(tmp_path / "part")["state"]["epoch"] == 1
    resumed = service.train(str(cls_meta), str(tmp_path / "part"), TrainOptions(**options, resume=True))
    full = service.train(str(cls_meta), str(tmp_path / "full"), TrainOptions(**options))
    assert resumed["epochs"] == 4 and resumed["best"] == full["best"]
    history = _history(tmp_path / "full")
    assert [e["epoch"] for e in history] == [2, 4]
    assert _history(tmp_path / "part") == history
