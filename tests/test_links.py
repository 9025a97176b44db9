"""Issue 19 item 6: lfengine never writes through a symbolic link planted where it writes: a
fixed temporary name (gate-wrapper, --save_config_file), train.log or metrics.jsonl."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from lfengine import service
from lfengine.data.synthetic import write_classification_corpus
from lfengine.errors import ModelError
from lfengine.files import runlog
from lfengine.files.safe_io import open_append
from lfengine.gate.cmdline import write_config_file
from lfengine.gate.wrapper import WRAPPER_NAME, render_wrapper_files, write_wrapper_dir
from lfengine.options import TrainOptions
from lfengine.storage import store
from lfengine.training.model_writer import ModelWriter, append_metrics

VICTIM_TEXT = "the user's own file\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT, encoding="utf-8")
    return path


def test_gate_wrapper_does_not_follow_links_at_its_temporary_names(tmp_path, victim):
    target = tmp_path / "data" / WRAPPER_NAME
    target.mkdir(parents=True)
    names = list(render_wrapper_files("python3", ""))
    for name in names:  # the old code wrote .NAME.tmp, then renamed it
        (target / f".{name}.tmp").symlink_to(victim)
    write_wrapper_dir(str(tmp_path / "data"), portable=True)
    assert victim.read_text(encoding="utf-8") == VICTIM_TEXT
    for name in names:
        assert (target / name).is_file() and not (target / name).is_symlink()
        executable = bool((target / name).stat().st_mode & stat.S_IXUSR)
        assert executable == name.endswith(".sh"), name


def test_save_config_file_does_not_follow_a_link_at_its_temporary_name(tmp_path, victim):
    config = tmp_path / "settings.conf"
    Path(str(config) + ".tmp").symlink_to(victim)
    write_config_file(str(config), {"maxepochs": "3", "notrain": True}, program="gate-train")
    assert victim.read_text(encoding="utf-8") == VICTIM_TEXT
    assert "maxepochs = 3" in config.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["train.log", "metrics.jsonl", "weights.pt", "model.json"])
def test_training_refuses_a_model_directory_holding_a_link(tmp_path, victim, name):
    meta = write_classification_corpus(tmp_path, 40, seed=1)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / name).symlink_to(victim)
    with pytest.raises(ModelError, match="is a symbolic link") as refused:
        service.train(str(meta), str(model_dir), TrainOptions(max_epochs=1, threads=1))
    assert refused.value.data["file"] == str(model_dir / name)
    assert victim.read_text(encoding="utf-8") == VICTIM_TEXT


def test_appends_never_go_through_a_link_planted_meanwhile(tmp_path, victim):
    """The directory is checked when training starts; a link planted after that is refused by
    every append itself (O_NOFOLLOW), and the log footer gives up quietly."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    paths = store.model_paths(model_dir)
    for path in (paths.log, paths.metrics):
        path.symlink_to(victim)
    with pytest.raises(ModelError, match="symbolic link"):
        runlog.append_text(paths.log, "header\n")
    with pytest.raises(ModelError, match="symbolic link"):
        append_metrics(model_dir, {"epoch": 1})
    writer = ModelWriter(model_dir)
    with pytest.raises(ModelError, match="symbolic link"), writer.logging_to_file():
        logging.getLogger("lfengine").info("a record")
    writer.log_footer({"stopped": "done"})  # warns, never raises: the model is saved by then
    assert victim.read_text(encoding="utf-8") == VICTIM_TEXT


def test_appends_refuse_what_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "train.log"
    os.mkfifo(fifo)
    with pytest.raises(ModelError, match="not a regular file"):
        open_append(fifo)  # returns at once: no reader needed, nothing blocks
    with open_append(tmp_path / "new.log") as handle:
        handle.write("one line\n")
    assert (tmp_path / "new.log").read_text(encoding="utf-8") == "one line\n"
