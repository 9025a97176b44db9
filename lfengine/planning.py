"""Planning a model: what a training would build for a meta file and options, before any data
is read. ``describe`` and ``train`` both plan here, so what describe shows is what train builds.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lfengine.builder.base import TaskModel
from lfengine.builder.build import NetworkPlan, build_network, build_reporting_settings
from lfengine.builder.config import ModelConfig
from lfengine.builder.describe import describe_architecture
from lfengine.builder.heuristics import choose_config
from lfengine.builder.registry import ModulePermission, absolute_module, allow_modules
from lfengine.data.batching import validation_size
from lfengine.data.codec import Codec, build_codec
from lfengine.data.meta import FeatureSpec, read_meta
from lfengine.errors import LfEngineError, OptionError
from lfengine.evaluation.metrics import is_chunk_label_set
from lfengine.options import TrainOptions
from lfengine.settings import DEFAULT_VALSIZE, DEFAULT_VALSPLIT, DESCRIBED_OPTIONS

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


def plan_model(
    spec: FeatureSpec,
    options: TrainOptions,
    n_train: int,
    codec: Codec | None = None,
    init: dict[str, np.ndarray] | None = None,
) -> Plan:
    """Codec (built from the meta file unless given), settings and network for ``n_train``
    training items: the training size the heuristics see (split_sizes)."""
    if options.module != absolute_module(options.module):
        options = dataclasses.replace(options, module=absolute_module(options.module))
    if codec is None:
        codec, init = build_codec(spec, embs=options.embs, maxlens=options.maxlens, seed=options.seed)
    layout = codec.layout()
    config, provenance = choose_config(layout, options, n_train)
    network = NetworkPlan(layout, config, init)
    for note in network.network_class.input_notes(layout, config):
        log.info("%s: %s", config.module or "auto network", note)
    check_size(network)
    torch.manual_seed(options.seed)
    model, used = build_reporting_settings(network)
    used -= unused_training_settings(codec)
    _warn_unused(provenance, used, type(model).__name__)
    return Plan(spec, codec, config, provenance, model, es_metric_for(options.es_metric, codec), used)


def unused_training_settings(codec: Codec) -> frozenset[str]:
    """Training settings with nothing to act on in this data (the reads in training/input_noise.py and
    training/training_run.py are conditional on these inputs)."""
    unused = set()
    if not codec.previous_label_columns:
        unused.add("previous_label_dropout")
    if not codec.token_columns and not codec.token_lists:  # the only inputs turned into OOV
        unused |= {"unk_replace", "word_dropout"}
    if not codec.vocabs:  # no embedding rows to map to OOV
        unused.add("oov_untrained")
    return frozenset(unused)


def _warn_unused(provenance: dict[str, str], used: frozenset[str], network: str) -> None:
    """A setting the user gave that the chosen network never reads would be silently ignored."""
    for name in sorted(n for n, source in provenance.items() if source == "option" and n not in used):
        log.warning(
            "setting %s is ignored: the %s network does not use it (describe lists the settings it uses)",
            name,
            network,
        )


#: The most parameters a network may have: 2 GiB of float32 weights, and three times that with
#: the optimizer's state. Far beyond what LF data sets need; beyond it, settings are typos.
MAX_PARAMETERS = 2**29


def check_size(network: NetworkPlan) -> None:
    """Refuse settings whose network would exhaust memory, before a byte of it is allocated.

    Each setting is range-checked on its own, but together (64 layers of 16384 units, or a
    large vocabulary with wide embeddings) they can still ask for tens of GB. The network is
    built once on torch's "meta" device, which records shapes and allocates nothing, and its
    parameters are counted (the first such build in a process costs a second or two).
    """
    try:
        with torch.device("meta"):
            parameters = sum(p.numel() for p in build_network(network).parameters())
    except LfEngineError:
        raise
    except Exception as exc:  # a user module that cannot be built without data: not checked
        log.debug("network size not checked (%s: %s)", type(exc).__name__, exc)
        return
    if parameters > MAX_PARAMETERS:
        raise OptionError(
            f"these settings build a network of {parameters:,} parameters, more than the limit of "
            f"{MAX_PARAMETERS:,}: lower hidden_size, hidden_layers, the LSTM sizes or the embedding dims"
        )


def es_metric_for(choice: str, codec: Codec) -> str:
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
    hyper = {
        name: {"value": value, "source": plan.provenance.get(name, "heuristic")}
        for name, value in plan.config.to_dict().items()
        if name in plan.used
    }
    for setting in DESCRIBED_OPTIONS:
        value = getattr(options, setting.name)
        hyper[setting.name] = {"value": value, "source": "option" if value != setting.default else "default"}
    if options.valsize is None and options.valfile is None:
        hyper["valsize"] = {"value": DEFAULT_VALSIZE, "source": "heuristic"}
    if options.valsplit is None and options.valfile is None:
        hyper["valsplit"] = {
            "value": "tail" if not options.shuffle else DEFAULT_VALSPLIT,
            "source": "heuristic",
        }
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
        "architecture": describe_architecture(plan.model),
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
                "rows": codec.row_counts.get(e),
            }
            for e, s in codec.embeddings.items()
        ],
        "char_encoder": None
        if codec.char_vocab is None or not plan.config.char_encoder
        else {"column": codec.column_names[codec.char_column], "size": len(codec.char_vocab)},
        "labels": codec.labels,
        "hyperparameters": hyper,
    }


def split_sizes(n: int, options: TrainOptions) -> tuple[int, int]:
    """How many of the training file's ``n`` items train and how many validate.

    The one place that turns valsize/valfile into sizes: training splits its data by it, and
    describe plans with it, so the heuristics that depend on the training size (batch size,
    epochs, patience, learning rate) come out the same in both.
    """
    if options.valfile:
        return n, 0  # validation comes from its own file; the whole training file trains
    size = validation_size(n, options.valsize)
    return n - size, size


def describe(
    meta_path: str,
    options: TrainOptions,
    *,
    trust_module: bool = False,
    named_modules: Iterable[str | None] | None = None,
) -> dict[str, Any]:
    """What training would build, without reading the data file (its size is in the meta file).

    User modules as for ``service.train``: those the caller named (default: ``options``'), or
    any with ``trust_module``."""
    names = options.named_modules() if named_modules is None else named_modules
    spec = read_meta(meta_path)
    with allow_modules(ModulePermission.of(names, any_module=trust_module)):
        # Only shapes are described: no initial embedding rows are drawn, and the network is built
        # on torch's "meta" device, which allocates none of its weights. A 1M-word vocabulary's
        # table alone is 700 MB; drawing and copying it took describe to 3 GB.
        codec, _ = build_codec(
            spec, embs=options.embs, maxlens=options.maxlens, seed=options.seed, matrices=False
        )
        size = planned_training_size(spec, options)
        try:
            with torch.device("meta"):
                plan = plan_model(spec, options, size, codec, None)
        except LfEngineError:
            raise
        except Exception as exc:  # a user module that reads its tensors while it is built
            log.debug("describe builds the network in memory (%s: %s)", type(exc).__name__, exc)
            plan = plan_model(spec, options, size, codec, None)
        return describe_plan(plan, options)


def planned_training_size(spec: FeatureSpec, options: TrainOptions) -> int:
    """The training size before the data file is read: the meta file's count, less validation."""
    return split_sizes(spec.lines_written, options)[0] if spec.lines_written > 0 else 0
