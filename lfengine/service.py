"""The operations of lfengine, shared by the command line, the protocol server and the GATE wrapper.

describe / train / load_model / evaluate: each takes paths and TrainOptions and returns plain
JSON-able dicts, so every front end runs exactly the same code.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfengine import __version__, store
from lfengine.builder.base import TaskModel
from lfengine.builder.config import ModelConfig
from lfengine.builder.describe import describe_model, render_tree
from lfengine.builder.heuristics import choose_config
from lfengine.builder.registry import resolve_module
from lfengine.data.batching import split_indices
from lfengine.data.codec import Codec, build_codec
from lfengine.data.encoding import Encoded
from lfengine.data.meta import FeatureSpec, read_meta
from lfengine.data.reader import read_data
from lfengine.errors import ModelError, OptionError
from lfengine.metrics import is_chunk_label_set
from lfengine.options import TrainOptions
from lfengine.predictor import Predictor
from lfengine.trainer import Schedule, StopSignals, Trainer

log = logging.getLogger(__name__)


# --- building ---------------------------------------------------------------------------------
@dataclass
class Plan:
    """What training will use: codec, initial embeddings, chosen settings and the network."""

    spec: FeatureSpec
    codec: Codec
    config: ModelConfig
    provenance: dict[str, str]
    model: TaskModel
    es_metric: str


def _plan(
    spec: FeatureSpec,
    options: TrainOptions,
    n_train: int,
    codec: Codec | None = None,
    init: dict[str, np.ndarray] | None = None,
) -> Plan:
    module = options.module
    if module and ".py:" in module and not Path(module).is_absolute():
        # Stored with the model and imported again at load time, possibly from another directory.
        path, _, class_name = module.rpartition(":")
        options = dataclasses.replace(options, module=f"{Path(path).resolve()}:{class_name}")
    if codec is None:
        codec, init = build_codec(spec, embs=options.embs, maxlens=options.maxlens, seed=options.seed)
    layout = codec.layout()
    config, provenance = choose_config(layout, options, n_train)
    network_class = resolve_module(config.module)
    notes = network_class.input_notes(layout, config)
    for note in notes:
        log.info("%s: %s", config.module or "auto network", note)
    torch.manual_seed(options.seed)
    model = network_class(layout, config, init)
    return Plan(spec, codec, config, provenance, model, _es_metric(options.es_metric, codec))


def _es_metric(choice: str, codec: Codec) -> str:
    """auto: span F1 for chunk labels, accuracy for other labels, MSE for regression."""
    if codec.task == "regression":
        if choice in ("accuracy", "f1"):
            raise OptionError(f"es_metric {choice!r} does not apply to regression; use loss or auto")
        return "mse" if choice == "auto" else choice
    if choice == "auto":
        return "f1" if is_chunk_label_set(codec.labels) else "accuracy"
    return choice


def describe_plan(plan: Plan, options: TrainOptions) -> dict[str, Any]:
    """The architecture, vocabularies, labels and every hyperparameter with its source."""
    tree = describe_model(plan.model)
    hyper = {
        name: {"value": value, "source": plan.provenance.get(name, "heuristic")}
        for name, value in plan.config.to_dict().items()
    }
    defaults = TrainOptions()
    for name in ("seed", "valsize", "valfile", "ngram_layer", "embs", "maxlens", "shuffle"):
        value = getattr(options, name)
        hyper[name] = {"value": value, "source": "option" if value != getattr(defaults, name) else "default"}
    if options.valsize is None and options.valfile is None:
        hyper["valsize"] = {"value": 0.1, "source": "heuristic"}
    hyper["es_metric"] = {
        "value": plan.es_metric,
        "source": "option" if options.es_metric != "auto" else "heuristic",
    }
    codec = plan.codec
    notes = type(plan.model).input_notes(codec.layout(), plan.config)
    return {
        **({"notes": notes} if notes else {}),  # which LF columns a predefined module reads/ignores
        "task": codec.task,
        "is_sequence": codec.is_sequence,
        "features": codec.num_features,
        "architecture": {"text": render_tree(tree), "tree": tree, "parameters": tree.get("parameters", 0)},
        "vocabularies": [
            {
                "emb_id": e,
                "size": len(codec.vocabs[e]),
                "dims": s.dims,
                "mode": s.mode,
                "minfreq": s.minfreq,
                "pretrained": bool(s.file),
                "file": s.file or None,
                "sources": s.sources,
            }
            for e, s in codec.embeddings.items()
        ],
        "char_encoder": None
        if codec.char_vocab is None or not plan.config.char_encoder
        else {"column": codec.column_names[codec.char_column], "size": len(codec.char_vocab)},
        "labels": codec.labels,
        "hyperparameters": hyper,
    }


def estimated_training_size(spec: FeatureSpec) -> int:
    """Training items before the data file is read: the meta file's count less 10 % validation."""
    return max(spec.lines_written - int(0.1 * spec.lines_written), 1)


def describe(meta_path: str, options: TrainOptions) -> dict[str, Any]:
    """What training would build, without reading the data file."""
    spec = read_meta(meta_path)
    return describe_plan(_plan(spec, options, estimated_training_size(spec)), options)


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
) -> dict[str, Any]:
    """Train a model from an LF meta/data pair into ``model_dir``; blocks until done."""
    started = time.monotonic()
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
    plan = _plan(spec, options, len(train_data), codec, init)
    description = describe_plan(plan, options)
    log.info(
        "lfengine %s: %s model for %s\n%s",
        __version__,
        codec.task,
        meta_path,
        description["architecture"]["text"],
    )
    log.info(
        "training on %d %s, validating on %d",
        len(train_data),
        "sequences" if codec.is_sequence else "instances",
        len(val_data) if val_data is not None else 0,
    )
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
            "meta_file": str(Path(meta_path).resolve()),
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
    with _log_to(store.model_paths(model_dir_path).log):
        if options.resume:
            # On the CPU: RNG states must stay CPU tensors; the optimizer moves its state itself.
            trainer.resume(store.load_checkpoint(model_dir_path, map_location="cpu"))
        stopped = trainer.fit(train_data, val_data)
    state = trainer.state
    if best_weights:  # rewrite model.json with the whole history, keeping the best weights
        _finish_metadata(metadata, state, stopped)
        store.save_model_dir(model_dir_path, metadata, best_weights)
    log.info(
        "training finished (%s) after %d epochs; best epoch %d: %s",
        stopped,
        state.epoch,
        state.best_epoch,
        state.best_metrics,
    )
    return {
        "model_dir": str(model_dir_path),
        "epochs": state.epoch,
        "stopped": stopped,
        "best_epoch": state.best_epoch,
        "best": state.best_metrics,
        "seconds": time.monotonic() - started,
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
        result = read_data(self.codec, data_path)
        report = self.predictor.evaluate(result.data)
        report["file"] = str(data_path)
        return report

    def describe(self) -> dict:
        return self.metadata["description"]


def load_model(model_dir: str, device: str = "cpu") -> LoadedModel:
    return LoadedModel(model_dir, device)


def evaluate(model_dir: str, data_path: str) -> dict:
    return load_model(model_dir).evaluate(data_path)
