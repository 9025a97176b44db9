"""The operations of lfengine, shared by the command line, the protocol server and the GATE wrapper.

describe / train / load_model / evaluate: each takes paths and TrainOptions and returns plain
JSON-able dicts, so every front end runs exactly the same code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from lfengine import __version__, distributed, runlog, store
from lfengine.accelerate import auto_device, choose_precision, dense_parameters
from lfengine.allocator import training_memory
from lfengine.builder.config import ModelConfig
from lfengine.builder.registry import absolute_module, is_user_module, resolve_module
from lfengine.data.batching import split_indices
from lfengine.data.codec import Codec, build_codec
from lfengine.data.encoding import Encoded
from lfengine.data.meta import FeatureSpec, read_meta
from lfengine.data.reader import read_data
from lfengine.data.rows import remap_untrained, restrict_to_trained
from lfengine.errors import DataLineError, ModelError, OptionError
from lfengine.model_parts import save_part
from lfengine.options import TrainOptions
from lfengine.paths import open_regular, path_problem
from lfengine.planning import describe, describe_plan, plan_model, split_sizes
from lfengine.predictor import Predictor, RowOutputs
from lfengine.safe_io import remove_stale_temp_files
from lfengine.trainer import Schedule, StopSignals, Trainer

__all__ = ["describe", "evaluate", "load_model", "LoadedModel", "train"]

log = logging.getLogger(__name__)


# --- training ---------------------------------------------------------------------------------
def _device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError("a CUDA device was requested but none is usable here; use device cpu or auto")
    return torch.device(choice)


class _TrainLogHandler(logging.FileHandler):
    """train.log: a write that fails (a full disk) costs the log file, never the training, and
    is reported once on stderr, without the traceback logging would print for each record."""

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


@contextmanager
def _log_to(path: Path):
    """Copy log records to the model's train.log while training runs."""
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


def train(
    meta_path: str,
    model_dir: str,
    options: TrainOptions,
    *,
    on_progress: Callable[[dict], None] | None = None,
    cancel: threading.Event | None = None,
    trust_module: bool = False,
    on_start: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Train a model from an LF meta/data pair into ``model_dir``; blocks until done.

    ``on_start`` receives the facts of the run (data counts, labels, device, settings,
    architecture; runlog.run_facts) once the network is built, before the first epoch.

    ``trust_module``: on resume, allow the user module named in the stored model.json to be
    imported (naming the same module in ``options`` allows it too).
    """
    # Every process that trains (CLI, protocol server, GATE scripts) keeps freed memory for reuse.
    with training_memory(), torch_threads(options.threads or distributed.threads_per_worker(options.workers)):
        return _train(meta_path, model_dir, options, on_progress, cancel, trust_module, on_start)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with this many torch threads, then restore the previous setting (it is process-wide,
    and one request must not change the threads of the requests after it)."""
    if not threads:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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


def _resume_options(
    model_dir: Path, options: TrainOptions, trust_module: bool
) -> tuple[dict, dict, TrainOptions]:
    """The stored model, its weights and its options (as in the interrupted run, except where to
    run and, if given, how long) for resuming."""
    stored, weights = store.load_model_dir(model_dir)
    stored_options = stored["training"]["options"]
    module = stored_options.get("module")
    if is_user_module(module) and not trust_module and module != absolute_module(options.module):
        raise ModelError(untrusted_module_message(str(model_dir), module), file=str(model_dir))
    resumed = {**stored_options, "resume": True, "device": options.device, "threads": options.threads}
    if options.max_epochs is not None:
        resumed["max_epochs"] = options.max_epochs
        log.info("resuming with max_epochs %d", options.max_epochs)
    return stored, weights, TrainOptions.from_dict(resumed)


def _train(
    meta_path: str,
    model_dir: str,
    options: TrainOptions,
    on_progress: Callable[[dict], None] | None,
    cancel: threading.Event | None,
    trust_module: bool,
    on_start: Callable[[dict], None] | None,
) -> dict[str, Any]:
    started = time.monotonic()
    started_at = runlog.now()
    _check_paths(model_dir, options)
    device = _device(options.device)
    if device.type == "cpu":  # refuse bf16/fp16 on the CPU before any work
        choose_precision(options.precision, device)
    main = not distributed.under_launcher() or os.environ.get("RANK") == "0"
    spec = read_meta(meta_path)
    model_dir_path = Path(model_dir)
    codec = init = None
    stored_weights: dict[str, torch.Tensor] = {}
    if model_dir_path.is_dir() and main:
        remove_stale_temp_files(model_dir_path)
    if options.resume and not store.model_paths(model_dir_path).checkpoint.is_file():
        log.warning(
            "--resume: %s holds no checkpoint (the earlier run ended before its first epoch was "
            "saved, or never ran): starting afresh",
            model_dir_path,
        )
        options = TrainOptions.from_dict({**options.to_dict(), "resume": False})
    if options.resume:
        stored, stored_weights, options = _resume_options(model_dir_path, options, trust_module)
        codec = Codec.from_dict(stored["codec"])  # the same vocabularies as the interrupted run
    else:
        codec, init = build_codec(spec, embs=options.embs, maxlens=options.maxlens, seed=options.seed)
    train_data, val_data = _read_splits(spec, codec, options)
    plan = plan_model(spec, options, len(train_data), codec, init)
    if plan.config.oov_untrained and not options.resume:  # a resumed codec has this already
        # Values only in the validation split (or nowhere) are unknown from here on.
        restrict_to_trained(codec, train_data)
        if val_data is not None:
            val_data = remap_untrained(codec, val_data)
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
    facts = runlog.run_facts(
        meta_path,
        spec.data_path(),
        model_dir_path,
        type(plan.model).__name__,
        codec,
        description,
        (len(train_data), len(val_data) if val_data is not None else 0),
        str(device),
    )
    facts.update(started=started_at, resumed=options.resume)
    log.log(
        logging.DEBUG if on_start is not None else logging.INFO,  # else the caller shows the facts
        "lfengine %s: %s (%s) for %s: training on %d %s, validating on %d",
        __version__,
        facts["network"],
        codec.task,
        meta_path,
        facts["train"],
        facts["unit"],
        facts["validation"],
    )
    log.debug("architecture:\n%s", description["architecture"]["text"])
    if on_start is not None:
        on_start(facts)
    if options.no_train:
        return {
            "model_dir": str(model_dir_path),
            "epochs": 0,
            "stopped": "no-train",
            "best": {},
            "seconds": time.monotonic() - started,
            "description": description,
        }
    codec_ref = None
    if main:  # the vocabularies, written once here rather than at each save of the model
        with store.file_system_errors("write the vocabularies to", model_dir_path):  # a full disk: 1020
            codec_ref = save_part(model_dir_path, "codec", codec.to_dict())
    metadata = {
        "task": codec.task,
        "is_sequence": codec.is_sequence,
        "labels": codec.labels,
        "num_features": codec.num_features,
        "codec": codec_ref,
        "config": plan.config.to_dict(),
        "description": description,
        "training": {
            "meta_file": facts["meta_file"],
            "data_file": facts["data_file"],
            "data_sha256": facts["data_sha256"],
            "started": started_at,
            "options": options.to_dict(),
            "instances": len(train_data),
            "validation": len(val_data) if val_data is not None else 0,
        },
    }

    # The best weights so far; when resuming, those already saved, so that the final model.json
    # records the whole history even if the resumed epochs never improve on them.
    best_weights: dict[str, torch.Tensor] = dict(stored_weights)

    def save_model(state: Any) -> None:
        """Called when validation improves (or each epoch without validation): write it now."""
        if not main:
            return
        best_weights.clear()
        best_weights.update({k: v.detach().cpu().clone() for k, v in plan.model.state_dict().items()})
        _finish_metadata(metadata, state)
        store.save_model_dir(model_dir_path, metadata, best_weights)

    signals = StopSignals(
        cancel=cancel,
        stop_file=Path(options.stop_file) if options.stop_file else Path(meta_path).resolve().parent / "STOP",
    )
    schedule = Schedule(
        es_metric=plan.es_metric,
        validate_every_epochs=options.validate_every_epochs,
        validate_every_batches=options.validate_every_batches,
        validate_every_instances=options.validate_every_instances,
        report_every_batches=options.report_every_batches,
        report_every_instances=options.report_every_instances,
    )
    # One process, or rank 0 of several (it starts the local workers) or another rank.
    worker_options = json.dumps({**options.to_dict(), "workers": 1})
    coordinator = distributed.start(options.workers, device, [meta_path, model_dir, worker_options])
    trainer = Trainer(
        plan.model,
        codec,
        plan.config,
        schedule,
        model_dir_path,
        save_model,
        seed=options.seed,
        device=device,
        signals=signals,
        on_progress=on_progress if main else None,
        coordinator=coordinator,
        precision=precision,
    )
    log_path = store.model_paths(model_dir_path).log
    if main:
        defaults = TrainOptions().to_dict()
        changed = {k: v for k, v in options.to_dict().items() if v != defaults[k]}
        with store.file_system_errors("write the training log", log_path):  # a full disk: 1020
            runlog.append_text(log_path, runlog.run_header(facts, changed))
    failed = True
    try:
        with _log_to(log_path) if main else nullcontext():
            if options.resume:
                # On the CPU: RNG states must stay CPU tensors; the optimizer moves its state itself.
                payload = store.load_checkpoint(model_dir_path, map_location="cpu") if main else None
                trainer.resume(coordinator.shared_payload(payload))
            stopped = trainer.fit(train_data, val_data)
        state = trainer.state
        metadata["training"]["finished"] = runlog.now()
        if best_weights and main:  # rewrite model.json with the whole history, keeping the best weights
            _finish_metadata(metadata, state, stopped)
            store.save_model_dir(model_dir_path, metadata, best_weights)
        coordinator.barrier()  # every rank returns once the model is written
        failed = False
    finally:
        coordinator.close(failed)
    log.info(
        "training finished (%s) after %d epochs; best epoch %d: %s",
        stopped,
        state.epoch,
        state.best_epoch,
        " ".join(f"{k} {v:.4f}" for k, v in state.best_metrics.items()),
    )
    result = {
        "model_dir": str(model_dir_path),
        "epochs": state.epoch,
        "stopped": stopped,
        "best_epoch": state.best_epoch,
        "best": state.best_metrics,
        "seconds": time.monotonic() - started,
    }
    try:  # the model is saved: a log that cannot be written must not cost the result
        runlog.append_text(log_path, runlog.run_footer(result))
    except OSError as exc:
        log.warning("cannot write %s: %s", log_path, exc)
    return result


def _finish_metadata(metadata: dict[str, Any], state: Any, stopped: str | None = None) -> None:
    metadata["training"].update(
        best=state.best_metrics,
        best_epoch=state.best_epoch,
        epochs=state.epoch,
        history=state.history,
        stopped=stopped,
    )


# --- application ------------------------------------------------------------------------------
class LoadedModel:
    """A trained model resident in memory, ready for apply / evaluate."""

    def __init__(self, model_dir: str, device: str = "cpu", *, trust_module: bool = False) -> None:
        self.model_dir = str(model_dir)
        metadata, weights = store.load_model_dir(model_dir, map_location="cpu")
        try:
            self.codec = Codec.from_dict(metadata["codec"])
            config = ModelConfig.from_dict(metadata["config"])
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{model_dir}: model.json lacks or garbles {exc}", file=str(model_dir)) from None
        self.metadata = metadata
        if is_user_module(config.module) and not trust_module:
            raise ModelError(untrusted_module_message(self.model_dir, config.module), file=self.model_dir)
        network = resolve_module(config.module)(self.codec.layout(), config, None)
        try:
            network.load_state_dict(weights)
        except RuntimeError as exc:
            raise ModelError(f"{model_dir}: the weights do not fit the stored architecture: {exc}") from None
        self.predictor = Predictor(network, self.codec, _device(device))

    @property
    def task(self) -> str:
        return self.codec.task

    @property
    def labels(self) -> list[str]:
        return list(self.codec.labels)

    @property
    def is_sequence(self) -> bool:
        return self.codec.is_sequence

    @property
    def num_features(self) -> int:
        return self.codec.num_features

    def apply(self, instances: list, *, distribution: bool = False) -> list[dict]:
        return self.predictor.apply(instances, distribution=distribution)

    def evaluate(self, data_path: str) -> dict:
        return self.evaluation(data_path)[0]

    def evaluation(self, data_path: str) -> tuple[dict, Encoded, RowOutputs]:
        """The report (with the confusion matrix of a classifier or tagger), the encoded data and
        the predictions, for error analysis. The protocol's ``evaluate`` and the command line's
        both come from here."""
        report, data, outputs = self.predictor.evaluate_file(data_path)
        report["file"] = str(data_path)
        return report, data, outputs

    def describe(self) -> dict:
        return self.metadata["description"]


def load_model(model_dir: str, device: str = "cpu", *, trust_module: bool = False) -> LoadedModel:
    """Load a model directory; a user module named in it is imported only with ``trust_module``."""
    return LoadedModel(model_dir, device, trust_module=trust_module)


def evaluate(model_dir: str, data_path: str, *, trust_module: bool = False) -> dict:
    return load_model(model_dir, trust_module=trust_module).evaluate(data_path)


def untrusted_module_message(model_dir: str, module: str) -> str:
    return (
        f"{model_dir}: model.json names the user module {module!r}; loading the model would import "
        "(execute) that file. A model directory is data, so lfengine imports a file named in it only "
        'when the caller allows it for this load: "trust_module": true in the request (protocol), '
        "--trust-module (command line) or --trust_module (apply.sh). Allow it only for a model "
        "directory and module file you trust."
    )
