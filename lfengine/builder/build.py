"""Building a network: the one way every caller (training, describe, loading, eject, tests)
turns a plan into a ``TaskModel``.

A ``NetworkPlan`` is what a network is built from: the data's layout, the chosen settings and
the initial embedding matrices. ``build_network`` resolves ``config.module`` (None: the auto
network) through the registry and constructs it; nothing else constructs networks by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lfengine.builder.base import TaskModel
from lfengine.builder.config import TRAINING_SETTINGS, ModelConfig, ReadRecorder
from lfengine.builder.registry import resolve_module
from lfengine.data.batch import InputLayout


@dataclass(frozen=True)
class NetworkPlan:
    """What a network is built from.

    ``init`` holds the initial embedding matrices per emb_id; None when a stored state dict
    will be loaded into the result.
    """

    layout: InputLayout
    config: ModelConfig
    init: dict[str, np.ndarray] | None = None

    @property
    def network_class(self) -> type[TaskModel]:
        """The class ``config.module`` names (importing a user module's file on first use)."""
        return resolve_module(self.config.module)


def build_network(plan: NetworkPlan, network_class: type[TaskModel] | None = None) -> TaskModel:
    """The network the plan names, built for its layout; ``network_class`` overrides the name
    (eject: the caller's own class, so nothing named in a model directory is imported)."""
    network = network_class if network_class is not None else plan.network_class
    return network(plan.layout, plan.config, plan.init)


def build_reporting_settings(plan: NetworkPlan) -> tuple[TaskModel, frozenset[str]]:
    """``build_network``, plus the settings the built network uses: those its construction
    read, and the training loop's (``TRAINING_SETTINGS``)."""
    config = plan.config
    recorder = ReadRecorder.of(config)
    model = build_network(NetworkPlan(plan.layout, recorder, plan.init))
    used = recorder.reads() | frozenset(TRAINING_SETTINGS)
    for module in model.modules():  # from here on the networks hold the plain config
        for name, value in list(vars(module).items()):
            if value is recorder:
                setattr(module, name, config)
    return model, used
