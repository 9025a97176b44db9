"""A save commits with one rename, whatever kills it, and readers always see a whole model
(issue 19 items 4 and 13); one training writes a directory at a time (item 5); directories of
format 2 (weights.pt, checkpoint.pt) still load and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from timeouts import scaled

from lfengine import service
from lfengine.data.synthetic import write_classification_corpus, write_sequence_corpus
from lfengine.errors import ModelError, ModelInUse
from lfengine.files.safe_io import remove_stale_temp_files
from lfengine.options import TrainOptions
from lfengine.protocol.envelope import error_code
from lfengine.storage import store
from lfengine.training.model_lock import training_lock

REPO = Path(__file__).resolve().parent.parent


def weights_of(generation: int) -> dict[str, torch.Tensor]:
    return {"w": torch.full((4,), float(generation))}


def save_generation(model_dir: Path, generation: int, checkpoint: dict | None) -> None:
    """An epoch's saves as a training run makes them (ModelWriter): the weights, then the
    checkpoint, each committed by model.json."""
    store.save_model_dir(model_dir, {"generation": generation}, weights_of(generation), checkpoint=checkpoint)
    ref = store.save_checkpoint(model_dir, {"generation": generation})
    store.save_model_dir(model_dir, {"generation": generation}, weights_of(generation), checkpoint=ref)


def save_killed_at(model_dir: Path, step: int, checkpoint: dict) -> bool:
    """Save generation 2 in a child process that is SIGKILLed just before its ``step``-th change
    to the file system (a rename or a deletion). False when the save finished before that step."""
    pid = os.fork()
    if pid == 0:  # the child: count the changes and die at the chosen one
        try:
            done = [0]

            def killed_before(change):
                def wrapped(*args, **kwargs):
                    if done[0] == step:
                        os.kill(os.getpid(), signal.SIGKILL)
                    done[0] += 1
                    return change(*args, **kwargs)

                return wrapped

            os.replace, os.unlink = killed_before(os.replace), killed_before(os.unlink)
            save_generation(model_dir, 2, checkpoint)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def test_a_kill_at_any_step_of_a_save_leaves_a_whole_model_and_its_checkpoint(tmp_path: Path) -> None:
    base = tmp_path / "base"
    save_generation(base, 1, None)
    checkpoint = json.loads((base / "model.json").read_text())["checkpoint"]
    step, seen = 0, set()
    while True:
        model_dir = tmp_path / f"killed{step}"
        shutil.copytree(base, model_dir)
        if not save_killed_at(model_dir, step, checkpoint):
            break
        metadata, weights = store.load_model_dir(model_dir)
        generation = metadata["generation"]
        assert torch.equal(weights["w"], weights_of(generation)["w"]), f"kill before change {step}"
        stored = store.load_checkpoint(model_dir)["generation"]
        assert stored == generation or (generation, stored) == (2, 1), f"kill before change {step}"
        seen.add((generation, stored))
        # the next save after the crash works and leaves only what its model.json names
        remove_stale_temp_files(model_dir)
        save_generation(model_dir, 3, None)
        named = json.loads((model_dir / "model.json").read_text())
        assert sorted(p.name for p in model_dir.iterdir()) == sorted(
            ["model.json", named["weights"]["file"], named["checkpoint"]["file"]]
        )
        step += 1
    assert step >= 8 and seen == {(1, 1), (2, 1), (2, 2)}


def to_format2(model_dir: Path) -> None:
    """Rewrite a trained directory as lfengine 0.2 (format 2) wrote it: weights.pt and
    checkpoint.pt under fixed names, model.json with the weights' digest only."""
    document = json.loads((model_dir / "model.json").read_text())
    (model_dir / document["weights"]["file"]).rename(model_dir / "weights.pt")
    (model_dir / document["checkpoint"]["file"]).rename(model_dir / "checkpoint.pt")
    old = {
        "format": "lfengine-model",
        "format_version": 2,
        "lfengine_version": document["lfengine_version"],
        "torch_version": document["torch_version"],
        "weights_sha256": document["weights"]["sha256"],
        "metadata": document["metadata"],
    }
    (model_dir / "model.json").write_text(json.dumps(old, indent=1) + "\n")


def test_a_format_2_directory_loads_and_resumes(tmp_path: Path) -> None:
    meta = write_sequence_corpus(tmp_path / "data", 30, seed=2)
    model_dir = tmp_path / "m"
    options = TrainOptions(max_epochs=1, device="cpu", threads=1, batch_size=8)
    service.train(str(meta), str(model_dir), options)
    to_format2(model_dir)
    assert service.load_model(str(model_dir)).labels
    assert store.load_checkpoint(model_dir)["state"]["epoch"] == 1

    resumed = TrainOptions(max_epochs=2, device="cpu", threads=1, batch_size=8, resume=True)
    assert service.train(str(meta), str(model_dir), resumed)["epochs"] == 2
    document = json.loads((model_dir / "model.json").read_text())
    assert document["format_version"] == store.FORMAT_VERSION == 4
    assert not (model_dir / "weights.pt").exists() and not (model_dir / "checkpoint.pt").exists()
    assert document["metadata"]["training"]["epochs"] == 2
    service.load_model(str(model_dir))


# --- one trainer per directory ----------------------------------------------------------------


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lfengine", *args]


def test_a_second_training_into_the_same_directory_is_refused(tmp_path: Path) -> None:
    meta = write_classification_corpus(tmp_path / "data", 60, seed=3)
    model_dir = tmp_path / "m"
    endless = ("--max-epochs", "200", "--threads", "1", "--es-patience", "200")
    first = subprocess.Popen(
        cli("train", str(meta), str(model_dir), *endless),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + scaled(120)  # a torch import on a loaded machine takes long
        while not (model_dir / "model.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, "the first training ended before the second one started"
        assert (model_dir / "model.json").exists(), "the first training saved nothing in time"
        first.send_signal(signal.SIGSTOP)  # paused in the middle of its training: it holds the lock
        second = subprocess.run(
            cli("train", str(meta), str(model_dir), "--max-epochs", "1", "--threads", "1"),
            capture_output=True,
            text=True,
            timeout=scaled(60),
        )
    finally:
        first.send_signal(signal.SIGCONT)
        first.send_signal(signal.SIGINT)  # Ctrl-C: it keeps its best model and exits with 130
        _, err = first.communicate(timeout=scaled(60))
    assert second.returncode == 1 and "Traceback" not in second.stderr
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"model directory {model_dir} is in use: another training" in lines[0]
    assert first.returncode == 130 and "keeping the best model" in err, err[-800:]
    service.load_model(str(model_dir))  # the first training's model, whole


def test_the_lock_is_a_typed_error_with_its_own_code(tmp_path: Path) -> None:
    with training_lock(tmp_path / "m"):
        with pytest.raises(ModelInUse, match=r"is in use: another training \(process \d+\)") as caught:
            with training_lock(tmp_path / "m"):
                pass
    assert isinstance(caught.value, ModelError) and error_code(caught.value) == 1022
    assert not (tmp_path / "m").exists(), "a directory the lock created and nothing filled is removed"
    with training_lock(tmp_path / "m"):  # released on exit: the next training gets it
        pass


# --- readers while a training saves -----------------------------------------------------------


def test_loads_while_a_training_saves_every_epoch_never_fail(tmp_path: Path) -> None:
    meta = write_classification_corpus(tmp_path / "data", 40, seed=4)
    model_dir = tmp_path / "m"
    # no validation: the model is saved after every epoch, and the checkpoint too
    args = ("--max-epochs", "30", "--threads", "1", "--valsize", "0", "--batch-size", "40")
    training = subprocess.Popen(
        cli("train", str(meta), str(model_dir), *args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    loads, failures = 0, []
    deadline = time.monotonic() + scaled(120)
    while training.poll() is None and time.monotonic() < deadline:
        if not (model_dir / "model.json").exists():
            time.sleep(0.01)
            continue
        try:
            store.load_model_dir(model_dir)
            loads += 1
        except ModelError as exc:
            failures.append(exc.message)
    _, err = training.communicate(timeout=scaled(60))
    assert training.returncode == 0, err.decode()[-800:]
    assert failures == [] and loads >= 20


def test_serve_refuses_a_training_into_a_locked_directory_with_1022(tmp_path: Path, engines) -> None:
    meta = write_classification_corpus(tmp_path / "data", 20, seed=5)
    engine = engines("json")
    with training_lock(tmp_path / "m"):  # as another training process holds it
        reply = engine.request("train", {"meta": str(meta), "model": str(tmp_path / "m")})
        assert reply["error"]["code"] == 1022 and reply["error"]["data"]["type"] == "ModelInUse"
        assert f"model directory {tmp_path / 'm'} is in use" in reply["error"]["message"]
    assert "result" in engine.request("status", {})  # the engine keeps serving
    assert engine.finish()[0] == 0
