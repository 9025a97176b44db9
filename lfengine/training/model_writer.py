"""The one writer of a model directory while a model trains into it.

A training run writes the vocabularies once, model.json with the best weights whenever the
trainer finds better ones, a checkpoint after every epoch (and at a stop), a metrics.jsonl
line per validation and train.log. Each save of the weights or of a checkpoint writes its own
content-named file and then commits model.json naming both (lfengine.storage.store.commit_model), so
the directory always holds one whole model and the checkpoint that goes with it. All of it goes
through one ModelWriter, which lfengine.service creates and the trainer is handed;
lfengine.storage.store holds the file formats and their safe writing. With several ranks only rank 0
writes: on the others every method is a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lfengine.errors import ModelError
from lfengine.files import runlog
from lfengine.files.safe_io import PathLike, open_append, to_strict_json
from lfengine.storage import store
from lfengine.storage.model_parts import save_part
from lfengine.storage.train_state import TrainState


class ModelWriter:
    """Writes one training run's model directory (rank 0 only: ``main``)."""

    def __init__(self, model_dir: Path, *, main: bool = True) -> None:
        self.paths = store.model_paths(model_dir)
        self.main = main
        self.metadata: dict[str, Any] = {}
        # The best weights so far; when resuming, those already saved, so that the final
        # model.json records the whole history even if the resumed epochs never improve on them.
        self.best_weights: dict[str, torch.Tensor] = {}
        # The files the last commit named: the best weights' and the latest checkpoint's.
        self.weights_ref: dict[str, Any] | None = None
        self.checkpoint_ref: dict[str, Any] | None = None

    @property
    def root(self) -> Path:
        return self.paths.root

    def write_codec(self, codec: dict[str, Any]) -> dict[str, Any] | None:
        """The vocabularies, written once per run rather than at each save of the model; the
        reference model.json keeps to them."""
        if not self.main:
            return None
        with store.file_system_errors("write the vocabularies to", self.root):  # a full disk: 1020
            return save_part(self.root, "codec", codec)

    def start(self, metadata: dict[str, Any], stored_weights: dict[str, torch.Tensor]) -> None:
        """What every model.json of this run carries, and the weights a resumed run starts from
        (with the checkpoint it resumes, named until this run writes its own)."""
        self.metadata = metadata
        self.best_weights = dict(stored_weights)
        if stored_weights and self.main:
            self.checkpoint_ref = store.checkpoint_reference(self.root)

    def save_model(self, model: torch.nn.Module, state: TrainState) -> None:
        """The trainer found its best weights so far (or has no validation): write them now."""
        if not self.main:
            return
        self.best_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self._record_training(state)
        self.weights_ref = store.save_weights(self.root, self.best_weights)
        self._commit()

    def finish(self, state: TrainState, stopped: str) -> None:
        """Rewrite model.json with the whole history and why training stopped, keeping the best
        weights."""
        self.metadata["training"]["finished"] = runlog.now()
        if self.best_weights and self.main:
            self._record_training(state, stopped)
            self._commit()

    def _record_training(self, state: TrainState, stopped: str | None = None) -> None:
        self.metadata["training"].update(
            best=state.best_metrics,
            best_epoch=state.best_epoch,
            epochs=state.epoch,
            history=state.history,
            stopped=stopped,
        )

    def save_checkpoint(self, payload: dict[str, Any]) -> None:
        """Write the checkpoint and commit model.json naming it with the best weights so far
        (none yet: nothing to resume into, so it is not written)."""
        if self.main and self.best_weights:
            checkpoint = store.save_checkpoint(self.root, payload)
            self.checkpoint_ref = checkpoint
            self._commit()

    def _commit(self) -> None:
        if self.weights_ref is None:  # resumed, not saved since: the stored weights, as they are
            self.weights_ref = store.save_weights(self.root, self.best_weights)
        store.commit_model(self.root, self.metadata, self.weights_ref, self.checkpoint_ref)

    def read_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint to resume from (None on other ranks: rank 0 shares its own). On the CPU:
        RNG states must stay CPU tensors; the optimizer moves its state itself."""
        return store.load_checkpoint(self.root, map_location="cpu") if self.main else None

    def append_metrics(self, record: dict[str, Any]) -> None:
        if self.main:
            append_metrics(self.root, record)

    # --- train.log --------------------------------------------------------------------------
    def log_header(self, facts: dict[str, Any], changed: dict[str, Any]) -> None:
        if self.main:
            with store.file_system_errors("write the training log", self.paths.log):  # a full disk: 1020
                runlog.append_text(self.paths.log, runlog.run_header(facts, changed))

    def log_footer(self, result: dict[str, Any]) -> None:
        """The model is saved: a log that cannot be written must not cost the result. Rank 0
        alone writes it, as it writes everything in the model directory."""
        if not self.main:
            return
        try:
            runlog.append_text(self.paths.log, runlog.run_footer(result))
        except (OSError, ModelError) as exc:  # ModelError: a link planted as train.log meanwhile
            logging.getLogger("lfengine.model_writer").warning("cannot write %s: %s", self.paths.log, exc)

    @contextlib.contextmanager
    def logging_to_file(self) -> Iterator[None]:
        """Copy log records to train.log while training runs (rank 0)."""
        if not self.main:
            yield
            return
        path = self.paths.log
        with store.file_system_errors("write the training log", path):
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = _TrainLogHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            previous, root.level = root.level, logging.INFO
        else:
            previous = None
        try:
            yield
        finally:
            root.removeHandler(handler)
            handler.close()
            if previous is not None:
                root.setLevel(previous)


class _TrainLogHandler(logging.FileHandler):
    """train.log: a write that fails (a full disk) costs the log file, never the training, and
    is reported once on stderr, without the traceback logging would print for each record."""

    def _open(self) -> Any:
        return open_append(self.baseFilename)  # never through a link planted as train.log

    def handleError(self, record: logging.LogRecord) -> None:
        failed_stream, self.stream = self.stream, None
        logging.getLogger().removeHandler(self)
        sys.stderr.write(f"lfengine: cannot write {self.baseFilename} any more: {sys.exc_info()[1]}\n")
        with contextlib.suppress(OSError):
            if failed_stream is not None:
                failed_stream.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            super().close()


def append_metrics(model_dir: PathLike, record: dict) -> None:
    """Append one validation record to metrics.jsonl as a single strict-JSON line, flushed."""
    paths = store.model_paths(model_dir)
    line = to_strict_json(record, "metrics record") + "\n"
    with store.file_system_errors("append to", paths.metrics):
        paths.root.mkdir(parents=True, exist_ok=True)
        with open_append(paths.metrics, "a+b") as handle:  # never through a link
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # an earlier append was cut short: keep its debris apart
                    line = "\n" + line
            handle.write(line.encode("ascii"))
            handle.flush()
