"""The operations of lfengine, shared by the command line, the protocol server and the GATE wrapper.

describe / train / load_model / evaluate: each takes paths and TrainOptions and returns plain
JSON-able dicts, so every front end runs exactly the same code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from lfengine import __version__, runlog, store
from lfengine.builder.config import ModelConfig
from lfengine.builder.registry import resolve_module
from lfengine.data.batching import split_indices
from lfengine.data.codec import Codec, build_codec
from lfengine.data.encoding import Encoded
from lfengine.data.meta import FeatureSpec, read_meta
from lfengine.data.reader import read_data
from lfengine.errors import ModelError, OptionError
from lfengine.options import TrainOptions
from lfengine.plan import Plan, describe_plan, make_plan
from lfengine.predictor import Predictor, RowOutputs
from lfengine.safe_io import sha256_file
from lfengine.trainer import Schedule, StopSignals, Trainer

log = logging.getLogger(__name__)


# --- describing ------------------------------------------------------------------------------
def describe(meta_path: str, options: TrainOptions) -> dict[str, Any]:
    """What training would build, without reading the data file."""
    spec = read_meta(meta_path)
    n_train = max(spec.lines_written - int(0.1 * spec.lines_written), 1)
    return describe_plan(make_plan(spec, options, n_train), options)


# --- training ---------------------------------------------------------------------------------
def _device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError("a CUDA device was requested but none is usable here; use device cpu or auto")
    return torch.device(choice)


@contextmanager
def _log_to(path: Path):
    """Copy log records to the model's train.log while training runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
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
    train_idx, val_idx = split_indices(len(data), options.valsize, seed=options.seed, shuffle=options.shuffle)
    return data.subset(train_idx), (data.subset(val_idx) if len(val_idx) else None)


def train(
    meta_path: str,
    model_dir: str,
    options: TrainOptions,
    *,
    on_progress: Callable[[dict], None] | None = None,
    cancel: threading.Event | None = None,
    on_start: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Train a model from an LF meta/data pair into ``model_dir``; blocks until done.

    ``on_start`` receives the facts of the run (data counts, labels, device, settings,
    architecture) once the network is built, before the first epoch."""
    started = time.monotonic()
    started_at = runlog.now()
    if options.threads:
        torch.set_num_threads(options.threads)
    device = _device(options.device)
    spec = read_meta(meta_path)
    model_dir_path = Path(model_dir)
    codec = init = None
    stored_weights: dict[str, torch.Tensor] = {}
    if options.resume:
        stored, stored_weights = store.load_model_dir(model_dir_path)
        codec = Codec.from_dict(stored["codec"])  # the same vocabularies as the interrupted run
        # Everything as in the interrupted run, except where to run it and, if given, how long.
        resumed = {
            **stored["training"]["options"],
            "resume": True,
            "device": options.device,
            "threads": options.threads,
        }
        if options.max_epochs is not None:
            resumed["max_epochs"] = options.max_epochs
            log.info("resuming with max_epochs %d", options.max_epochs)
        options = TrainOptions.from_dict(resumed)
    else:
        codec, init = build_codec(spec, embs=options.embs, maxlens=options.maxlens, seed=options.seed)
    train_data, val_data = _read_splits(spec, codec, options)
    plan = make_plan(spec, options, len(train_data), codec, init)
    description = describe_plan(plan, options)
    facts = _run_facts(meta_path, spec, model_dir_path, plan, description, train_data, val_data, device)
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
    metadata = {
        "task": codec.task,
        "is_sequence": codec.is_sequence,
        "labels": codec.labels,
        "num_features": codec.num_features,
        "codec": codec.to_dict(),
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
        on_progress=on_progress,
    )
    log_path = store.model_paths(model_dir_path).log
    defaults = TrainOptions().to_dict()
    changed = {k: v for k, v in options.to_dict().items() if v != defaults[k]}
    runlog.append_text(log_path, runlog.run_header(facts, changed))
    with _log_to(log_path):
        if options.resume:
            # On the CPU: RNG states must stay CPU tensors; the optimizer moves its state itself.
            trainer.resume(store.load_checkpoint(model_dir_path, map_location="cpu"))
        stopped = trainer.fit(train_data, val_data)
    state = trainer.state
    metadata["training"]["finished"] = runlog.now()
    if best_weights:  # rewrite model.json with the whole history, keeping the best weights
        _finish_metadata(metadata, state, stopped)
        store.save_model_dir(model_dir_path, metadata, best_weights)
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
    runlog.append_text(log_path, runlog.run_footer(result))
    return result


def _run_facts(
    meta_path: str,
    spec: FeatureSpec,
    model_dir: Path,
    plan: Plan,
    description: dict[str, Any],
    train_data: Encoded,
    val_data: Encoded | None,
    device: torch.device,
) -> dict[str, Any]:
    """What a person (and train.log) should know about a run before it starts."""
    data_file = Path(spec.data_path()).resolve()
    return {
        "meta_file": str(Path(meta_path).resolve()),
        "data_file": str(data_file),
        "data_sha256": sha256_file(data_file),
        "model_dir": str(model_dir),
        "task": plan.codec.task,
        "unit": "sequences" if plan.codec.is_sequence else "instances",
        "train": len(train_data),
        "validation": len(val_data) if val_data is not None else 0,
        "labels": list(plan.codec.labels),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "network": type(plan.model).__name__,
        "parameters": description["architecture"]["parameters"],
        "settings": runlog.headline_settings(description),
        "architecture": description["architecture"]["text"],
    }


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

    def __init__(self, model_dir: str, device: str = "cpu") -> None:
        self.model_dir = str(model_dir)
        metadata, weights = store.load_model_dir(model_dir, map_location="cpu")
        try:
            self.codec = Codec.from_dict(metadata["codec"])
            config = ModelConfig.from_dict(metadata["config"])
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{model_dir}: model.json lacks or garbles {exc}", file=str(model_dir)) from None
        self.metadata = metadata
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
        """The report, the encoded data and the predictions, for error analysis."""
        data = read_data(self.codec, data_path).data
        report, outputs = self.predictor.evaluate_rows(data)
        report["file"] = str(data_path)
        return report, data, outputs

    def describe(self) -> dict:
        return self.metadata["description"]


def load_model(model_dir: str, device: str = "cpu") -> LoadedModel:
    return LoadedModel(model_dir, device)


def evaluate(model_dir: str, data_path: str) -> dict:
    return load_model(model_dir).evaluate(data_path)
