"""The network builder: heuristics, layers, auto-built networks, predefined and user modules.

Typical use: ``config, provenance = choose_config(layout, options, n_train)``, then
``model = build_network(NetworkPlan(layout, config, init))``; ``describe_model(model)`` shows what was built.

The names below load on first use (PEP 562), so that importing a torch-free submodule such as
``lfengine.builder.config`` (what ``lfengine --help`` needs) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Prediction": "base",
    "TaskModel": "base",
    "NetworkPlan": "build",
    "build_network": "build",
    "ModelConfig": "config",
    "describe_model": "describe",
    "render_tree": "describe",
    "FeatureEmbeddings": "embeddings",
    "InputFeatures": "features",
    "choose_config": "heuristics",
    "resolve_module": "registry",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'lfengine.builder' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lfengine.builder.{_HOMES[name]}"), name)
