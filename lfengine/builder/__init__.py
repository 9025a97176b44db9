"""The network builder: heuristics, layers, auto-built networks, predefined and user modules.

Typical use: ``config, provenance = choose_config(layout, options, n_train)``, then
``model = build_network(NetworkPlan(layout, config, init))``; ``describe_model(model)`` shows what was built.
"""

from lfengine.builder.base import Prediction, TaskModel
from lfengine.builder.build import NetworkPlan, build_network
from lfengine.builder.config import ModelConfig
from lfengine.builder.describe import describe_model, render_tree
from lfengine.builder.embeddings import FeatureEmbeddings
from lfengine.builder.features import InputFeatures
from lfengine.builder.heuristics import choose_config
from lfengine.builder.registry import resolve_module

__all__ = [
    "FeatureEmbeddings",
    "InputFeatures",
    "ModelConfig",
    "NetworkPlan",
    "Prediction",
    "TaskModel",
    "build_network",
    "choose_config",
    "describe_model",
    "render_tree",
    "resolve_module",
]
