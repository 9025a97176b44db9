"""The operations of lfengine, shared by the command line, the protocol server and the GATE wrapper.

describe / train / load_model / evaluate: each takes paths and TrainOptions and returns plain
JSON-able dicts, so every front end runs exactly the same code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from lfengine.builder.build import NetworkPlan, build_network
from lfengine.builder.config import ModelConfig
from lfengine.builder.describe import describe_architecture
from lfengine.builder.registry import ModulePermission, allow_modules, check_module_allowed
from lfengine.data.codec import Codec
from lfengine.data.encoding import Encoded
from lfengine.errors import ModelError
from lfengine.options import TrainOptions
from lfengine.planning import describe
from lfengine.predictor import Predictor, RowOutputs
from lfengine.runtime.accelerate import requested_device
from lfengine.runtime.process import training_process
from lfengine.storage import store
from lfengine.training import distributed
from lfengine.training.training_run import TrainingRun

__all__ = ["describe", "evaluate", "load_model", "LoadedModel", "train"]

log = logging.getLogger(__name__)


def train(
    meta_path: str,
    model_dir: str,
    options: TrainOptions,
    *,
    on_progress: Callable[[dict], None] | None = None,
    cancel: threading.Event | None = None,
    trust_module: bool = False,
    named_modules: Iterable[str | None] | None = None,
    on_start: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Train a model from an LF meta/data pair into ``model_dir``; blocks until done.

    ``on_start`` receives the facts of the run (data counts, labels, device, settings,
    architecture; runlog.run_facts) once the network is built, before the first epoch.

    User modules (registry.ModulePermission): those the caller named itself, ``named_modules``
    (default: the ones ``options`` names; the command line passes its flags' only, since its
    ``--config`` may be a model's stored options), are imported; one named only by the stored
    model.json of ``--resume`` needs ``trust_module``.
    """
    names = options.named_modules() if named_modules is None else named_modules
    permission = ModulePermission.of(names, any_module=trust_module)
    with training_process(options.threads or distributed.threads_per_worker(options.workers)):
        run = TrainingRun(meta_path, model_dir, on_progress=on_progress, cancel=cancel, on_start=on_start)
        with allow_modules(permission):
            return run.execute(options)


# --- application ------------------------------------------------------------------------------
class LoadedModel:
    """A trained model resident in memory, ready for apply / evaluate."""

    def __init__(
        self,
        model_dir: str,
        device: str = "cpu",
        *,
        trust_module: bool = False,
        named_modules: Iterable[str | None] = (),
    ) -> None:
        self.model_dir = str(model_dir)
        metadata, weights = store.load_model_dir(model_dir, map_location="cpu")
        try:
            self.codec = Codec.from_dict(metadata["codec"])
            config = ModelConfig.from_dict(metadata["config"])
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{model_dir}: model.json lacks or garbles {exc}", file=str(model_dir)) from None
        self.metadata = metadata
        with allow_modules(ModulePermission.of(named_modules, any_module=trust_module)):
            check_module_allowed(config.module, where=self.model_dir)
            network = build_network(NetworkPlan(self.codec.layout(), config))
        try:
            network.load_state_dict(weights)
        except RuntimeError as exc:
            raise ModelError(f"{model_dir}: the weights do not fit the stored architecture: {exc}") from None
        self.predictor = Predictor(network, self.codec, requested_device(device))

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
        """The description stored at training time, its architecture read again from the loaded
        network: the classical models beside it (linear_crf, linear_text) are sized by their fit."""
        return {**self.metadata["description"], "architecture": describe_architecture(self.predictor.model)}


def load_model(
    model_dir: str,
    device: str = "cpu",
    *,
    trust_module: bool = False,
    named_modules: Iterable[str | None] = (),
) -> LoadedModel:
    """Load a model directory; a user module named in it is imported only with ``trust_module``
    (or when the caller named that module itself: ``named_modules``)."""
    return LoadedModel(model_dir, device, trust_module=trust_module, named_modules=named_modules)


def evaluate(model_dir: str, data_path: str, *, trust_module: bool = False) -> dict:
    return load_model(model_dir, trust_module=trust_module).evaluate(data_path)
