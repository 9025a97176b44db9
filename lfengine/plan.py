"""What training will build: the codec, the settings chosen for this data and these options,
the network, and the description of all that (``describe``), shared by describe and train."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfengine.builder.base import TaskModel
from lfengine.builder.config import ModelConfig
from lfengine.builder.describe import describe_model, render_tree
from lfengine.builder.heuristics import choose_config
from lfengine.builder.networks import build_reporting_settings
from lfengine.data.codec import Codec, build_codec
from lfengine.data.meta import FeatureSpec
from lfengine.errors import OptionError
from lfengine.metrics import is_chunk_label_set
from lfengine.options import TrainOptions

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """What training will use: codec, initial embeddings, chosen settings and the network."""

    spec: FeatureSpec
    codec: Codec
    config: ModelConfig
    provenance: dict[str, str]
    model: TaskModel
    es_metric: str
    used: frozenset[str]  # the settings this network and its training read (describe shows these)


def make_plan(
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
    torch.manual_seed(options.seed)
    model, used = build_reporting_settings(layout, config, init)
    if not codec.previous_label_columns:
        used -= {"previous_label_dropout"}
    _warn_unused(options, provenance, used, type(model).__name__)
    return Plan(spec, codec, config, provenance, model, _es_metric(options.es_metric, codec), used)


def _warn_unused(
    options: TrainOptions, provenance: dict[str, str], used: frozenset[str], network: str
) -> None:
    """A setting the user gave that the chosen network never reads would be silently ignored."""
    unused = sorted(name for name, source in provenance.items() if source == "option" and name not in used)
    for name in unused:
        log.warning(
            "setting %s is ignored: the %s network does not use it (describe lists the settings it uses)",
            name,
            network,
        )


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
        if name in plan.used
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
    return {
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
