"""One training run, in the steps lfengine.service.train takes: options and resume, data and
plan, the run itself, the result.

The model directory is written by one ModelWriter (lfengine.training.model_writer), which the trainer is
handed; with several ranks (``--workers``, torchrun) rank 0 alone writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lfengine import __version__
from lfengine.builder.registry import check_module_allowed
from lfengine.console.progress import kept_model, plural
from lfengine.data.batching import split_indices
from lfengine.data.codec import Codec, build_codec
from lfengine.data.encoding import Encoded
from lfengine.data.meta import FeatureSpec, read_meta
from lfengine.data.reader import read_data
from lfengine.data.rows import remap_untrained, restrict_to_trained
from lfengine.errors import DataLineError, OptionError
from lfengine.files import runlog
from lfengine.files.paths import open_regular, path_problem
from lfengine.files.safe_io import refuse_symlinks, remove_stale_temp_files
from lfengine.options import TrainOptions
from lfengine.planning import Plan, describe_plan, plan_model, split_sizes
from lfengine.runtime.accelerate import (
    Precision,
    auto_device,
    choose_precision,
    dense_parameters,
    requested_device,
)
from lfengine.storage import store
from lfengine.storage.train_state import TrainState
from lfengine.training import distributed
from lfengine.training.model_lock import training_lock
from lfengine.training.model_writer import ModelWriter
from lfengine.training.schedule import Schedule, StopSignals
from lfengine.training.trainer import Trainer

# The logger keeps its name from before the move into lfengine/training/: clients see it in log
# notifications (protocol.md) and may filter on it.
log = logging.getLogger("lfengine.training_run")


@dataclass
class Resumed:
    """What a resumed run takes from the model directory (empty when starting afresh)."""

    codec: Codec | None = None
    weights: dict[str, torch.Tensor] | None = None


@dataclass
class Prepared:
    """The data and the network of a run, and the facts shown before it starts."""

    codec: Codec
    plan: Plan
    train_data: Encoded
    val_data: Encoded | None
    device: torch.device
    precision: Precision
    description: dict[str, Any]
    facts: dict[str, Any]


@dataclass
class TrainingRun:
    """Train a model from an LF meta/data pair into a model directory (service.train)."""

    meta_path: str
    model_dir: str
    on_progress: Callable[[dict], None] | None = None
    cancel: threading.Event | None = None
    on_start: Callable[[dict], None] | None = None
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=runlog.now)

    def __post_init__(self) -> None:
        # One process, or rank 0 of several (it writes and reports), or another rank.
        self.main = not distributed.under_launcher() or os.environ.get("RANK") == "0"
        self.writer = ModelWriter(Path(self.model_dir), main=self.main)

    def execute(self, options: TrainOptions) -> dict[str, Any]:
        """The run, importing only the user modules the caller allowed (registry.allow_modules)."""
        _check_paths(self.model_dir, options)
        device = requested_device(options.device)
        if device.type == "cpu":  # refuse bf16/fp16 on the CPU before any work
            choose_precision(options.precision, device)
        spec = read_meta(self.meta_path)
        # One training writes a directory at a time (rank 0 for all ranks); --no-train writes nothing.
        writes = self.main and not options.no_train
        with training_lock(self.model_dir) if writes else contextlib.nullcontext():
            options, resumed = self.options_and_resume(options)
            prepared = self.data_and_plan(spec, options, resumed, device)
            if options.no_train:
                return self._no_train_result(prepared)
            state, stopped = self.run(options, prepared, resumed)
            return self.result(state, stopped)

    # --- 1. options and resume --------------------------------------------------------------
    def options_and_resume(self, options: TrainOptions) -> tuple[TrainOptions, Resumed]:
        """The options to train with and, for ``resume``, the interrupted run's codec and weights."""
        root = self.writer.root
        if root.is_dir() and self.main:
            remove_stale_temp_files(root)
        if options.resume and store.checkpoint_reference(root) is None:
            log.warning(
                "--resume: %s holds no checkpoint (the earlier run ended before its first epoch was "
                "saved, or never ran): starting afresh",
                root,
            )
            options = TrainOptions.from_dict({**options.to_dict(), "resume": False})
        if not options.resume:
            return options, Resumed()
        stored, weights = store.load_model_dir(root)
        stored_options = stored["training"]["options"]
        # A module the stored options name, refused now (before any data is read) unless allowed.
        for module in TrainOptions.from_dict(stored_options).named_modules():
            check_module_allowed(module, where=str(root))
        # As in the interrupted run, except where to run and, if given, how long.
        resumed = {**stored_options, "resume": True, "device": options.device, "threads": options.threads}
        if options.max_epochs is not None:
            resumed["max_epochs"] = options.max_epochs
            log.info("resuming with max_epochs %d", options.max_epochs)
        # the same vocabularies as the interrupted run
        return TrainOptions.from_dict(resumed), Resumed(Codec.from_dict(stored["codec"]), weights)

    # --- 2. data and plan -------------------------------------------------------------------
    def data_and_plan(
        self, spec: FeatureSpec, options: TrainOptions, resumed: Resumed, device: torch.device
    ) -> Prepared:
        """Read and encode the data, plan the network, choose device and precision; tell
        ``on_start`` the facts of the run."""
        codec, init = resumed.codec, None
        if codec is None:
            codec, init = build_codec(spec, embs=options.embs, maxlens=options.maxlens, seed=options.seed)
        train_data, val_data = _read_splits(spec, codec, options)
        plan = plan_model(spec, options, len(train_data), codec, init)
        if plan.config.oov_untrained and not options.resume:  # a resumed codec has this already
            # Values only in the validation split (or nowhere) are unknown from here on.
            restrict_to_trained(codec, train_data)
            if val_data is not None:
                val_data = remap_untrained(codec, val_data)
            if codec.row_counts:  # none without embedded (nominal) features
                log.info("embedding rows (trained / pretrained only / mapped to OOV): %s", codec.row_counts)
        if options.device == "auto":
            dense = dense_parameters(plan.model)
            device = torch.device(auto_device(dense, torch.cuda.is_available(), options.precision))
        device = distributed.local_device(device)
        precision = choose_precision(options.precision, device)
        log.log(
            logging.INFO if device.type == "cuda" else logging.DEBUG,
            "device %s, precision %s",
            device,
            precision.name,
        )
        description = describe_plan(plan, options)
        sizes = (len(train_data), len(val_data) if val_data is not None else 0)
        facts = runlog.run_facts(
            self.meta_path,
            spec.data_path(),
            self.writer.root,
            type(plan.model).__name__,
            codec,
            description,
            sizes,
            str(device),
        )
        facts.update(started=self.started_at, resumed=options.resume)
        prepared = Prepared(codec, plan, train_data, val_data, device, precision, description, facts)
        self._announce(prepared)
        return prepared

    def _announce(self, prepared: Prepared) -> None:
        facts = prepared.facts
        log.log(
            logging.DEBUG if self.on_start is not None else logging.INFO,  # else the caller shows the facts
            "lfengine %s: %s (%s) for %s: training on %d %s, validating on %d",
            __version__,
            facts["network"],
            prepared.codec.task,
            self.meta_path,
            facts["train"],
            facts["unit"],
            facts["validation"],
        )
        log.debug("architecture:\n%s", prepared.description["architecture"]["text"])
        if self.on_start is not None:
            self.on_start(facts)

    # --- 3. the run -------------------------------------------------------------------------
    def run(self, options: TrainOptions, prepared: Prepared, resumed: Resumed) -> tuple[TrainState, str]:
        """Train, writing the model directory as it goes; the final state and why it stopped."""
        self.writer.start(self._metadata(options, prepared), resumed.weights or {})
        # One process, or rank 0 of several (it starts the local workers) or another rank.
        worker_options = json.dumps({**options.to_dict(), "workers": 1})
        argv = [self.meta_path, self.model_dir, worker_options]
        coordinator = distributed.start(options.workers, prepared.device, argv)
        trainer = Trainer(
            prepared.plan.model,
            prepared.codec,
            prepared.plan.config,
            _schedule(prepared.plan, options),
            self.writer,
            seed=options.seed,
            device=prepared.device,
            signals=self._stop_signals(options),
            on_progress=self.on_progress if self.main else None,
            coordinator=coordinator,
            precision=prepared.precision,
        )
        defaults = TrainOptions().to_dict()
        self.writer.log_header(
            prepared.facts, {k: v for k, v in options.to_dict().items() if v != defaults[k]}
        )
        failed = True
        try:
            with self.writer.logging_to_file():
                if options.resume:
                    trainer.resume(coordinator.shared_payload(self.writer.read_checkpoint()))
                stopped = trainer.fit(prepared.train_data, prepared.val_data)
            self.writer.finish(trainer.state, stopped)
            coordinator.barrier()  # every rank returns once the model is written
            _share_best(coordinator, trainer.state)
            failed = False
        finally:
            coordinator.close(failed)
        return trainer.state, stopped

    def _metadata(self, options: TrainOptions, prepared: Prepared) -> dict[str, Any]:
        """What model.json says of the model and of this run (the history is added as it goes)."""
        codec, facts = prepared.codec, prepared.facts
        codec_ref = self.writer.write_codec(codec.to_dict())
        return {
            "task": codec.task,
            "is_sequence": codec.is_sequence,
            "labels": codec.labels,
            "num_features": codec.num_features,
            "codec": codec_ref,
            "config": prepared.plan.config.to_dict(),
            "description": prepared.description,
            "training": {
                "meta_file": facts["meta_file"],
                "data_file": facts["data_file"],
                "data_sha256": facts["data_sha256"],
                "started": self.started_at,
                "options": options.to_dict(),
                "instances": len(prepared.train_data),
                "validation": len(prepared.val_data) if prepared.val_data is not None else 0,
            },
        }

    def _stop_signals(self, options: TrainOptions) -> StopSignals:
        default_stop_file = Path(self.meta_path).resolve().parent / "STOP"
        return StopSignals(
            cancel=self.cancel, stop_file=Path(options.stop_file) if options.stop_file else default_stop_file
        )

    # --- 4. the result ----------------------------------------------------------------------
    def result(self, state: TrainState, stopped: str) -> dict[str, Any]:
        log.info(
            "training finished (%s) after %s; %s",
            stopped,
            plural(state.epoch, "epoch"),
            kept_model(state.best_epoch, state.epoch, state.best_metrics),
        )
        result = {
            "model_dir": str(self.writer.root),
            "epochs": state.epoch,
            "stopped": stopped,
            "best_epoch": state.best_epoch,
            "best": state.best_metrics,
            "seconds": time.monotonic() - self.started,
        }
        self.writer.log_footer(result)
        return result

    def _no_train_result(self, prepared: Prepared) -> dict[str, Any]:
        return {
            "model_dir": str(self.writer.root),
            "epochs": 0,
            "stopped": "no-train",
            "best": {},
            "seconds": time.monotonic() - self.started,
            "description": prepared.description,
        }


def _share_best(coordinator: distributed.Coordinator, state: TrainState) -> None:
    """Give every rank rank 0's best epoch and metrics (only rank 0 validates), so that each
    rank of a torchrun launch reports the result of the run, not an empty one of its own."""
    if not coordinator.parallel:
        return
    data = json.dumps([state.best_epoch, state.best_metrics]).encode() if coordinator.main else None
    state.best_epoch, state.best_metrics = json.loads(coordinator.share(data))


def _schedule(plan: Plan, options: TrainOptions) -> Schedule:
    return Schedule(
        es_metric=plan.es_metric,
        validate_every_epochs=options.validate_every_epochs,
        validate_every_batches=options.validate_every_batches,
        validate_every_instances=options.validate_every_instances,
        report_every_batches=options.report_every_batches,
        report_every_instances=options.report_every_instances,
    )


def _read_splits(spec: FeatureSpec, codec: Codec, options: TrainOptions) -> tuple[Encoded, Encoded | None]:
    data = read_data(codec, spec.data_path(), skip_bad_lines=options.skip_bad_lines).data
    if options.valfile:
        val = read_data(codec, options.valfile, skip_bad_lines=options.skip_bad_lines).data
        return data, val
    validation = split_sizes(len(data), options)[1]
    train_idx, val_idx = split_indices(
        len(data), validation, seed=options.seed, shuffle=options.shuffle, valsplit=options.valsplit
    )
    return data.subset(train_idx), (data.subset(val_idx) if len(val_idx) else None)


def _check_paths(model_dir: str, options: TrainOptions) -> None:
    """Refuse a model path that training could only fail to write, and a validation file it
    could not read, before any work starts."""
    problem = path_problem(model_dir)
    if problem is not None:
        raise OptionError(f"model directory {model_dir!r} cannot be used: {problem}", param="model")
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise OptionError(
            f"model directory {model_dir} is an existing file, not a directory: give a directory "
            "(new or an earlier model's) to write the model into",
            param="model",
        )
    if not options.no_train:  # first: a link planted as model.json is named as the link it is
        refuse_symlinks(model_dir)
    model_json = store.model_paths(model_dir).model_json
    if model_json.exists() and not options.no_train:
        store.refuse_foreign_model_json(model_json)
    if not options.no_train:
        store.check_writable(model_dir)
    if options.stop_file and os.path.lexists(options.stop_file) and not os.path.isfile(options.stop_file):
        raise OptionError(
            f"stop_file {options.stop_file} exists and is not a regular file: training would stop at "
            "once; give the path of a file to create when training should stop"
        )
    if options.valfile:
        try:
            open_regular(options.valfile).close()
        except OSError as exc:
            raise DataLineError(
                "cannot read the validation file", file=options.valfile, found=exc.strerror or str(exc)
            ) from None
