"""Method table and handlers of the resident engine.

A protocol method is one handler here, entered in ``Dispatcher._handlers`` (and in
IMMEDIATE_METHODS if it must not wait behind a training), over an operation of lfengine.service;
``init`` lists the table as the engine's capabilities. The loaded models live in
lfengine.serving.model_registry, the train requests in lfengine.serving.trainings.

The dispatcher knows nothing of bytes or threads of the transport: the server admits each
request here as it is read (``admit``) and runs it later (``execute``), in order, except for
``status`` and ``cancel``, which are immediate: they run as soon as they are read, even while a
training is running, so that a cancel takes effect at once. lfengine.service (and with it
torch) is imported inside the handlers that need it, so that start-up and ``status`` stay cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lfengine import __version__
from lfengine.errors import TrainingCancelled
from lfengine.options import TrainOptions
from lfengine.protocol.envelope import PROTOCOL_VERSION, InvalidParams, MethodNotFound, Params, Request
from lfengine.protocol.stream import FORMATS
from lfengine.serving.log_notifications import LogNotifications
from lfengine.serving.model_registry import ModelRegistry
from lfengine.serving.trainings import ProgressThrottle, Training, Trainings
from lfengine.settings import MAX_THREADS

# The logger keeps its name from before the move into lfengine/serving/: clients see it in log
# notifications (protocol.md) and may filter on it.
log = logging.getLogger("lfengine.dispatcher")

NOTIFICATION_KINDS = ("progress", "log")
LOG_LEVELS = ("debug", "info", "warning", "error")
IMMEDIATE_METHODS = frozenset({"status", "cancel"})


@dataclass
class Call:
    """An admitted request and what runs it."""

    request: Request
    handler: Callable[[Call], Any]
    immediate: bool
    training: Training | None = None
    started: float | None = None


class Dispatcher:
    """Runs requests against the engine state. Thread-safe where the server needs it."""

    def __init__(self, notify: Callable[[str, dict[str, Any]], None], *, transport: dict[str, Any]) -> None:
        self._notify = notify
        self.transport = transport  # {"format", "max_message_bytes"}, shown by init and status
        self.shutdown_requested = False
        self._lock = threading.Lock()
        self.models = ModelRegistry()
        self.trainings = Trainings()
        self._running: Call | None = None
        self._device: str | None = None
        self._threads: int | None = None
        self._notifications: frozenset[str] = frozenset()
        self._log_notifications = LogNotifications(notify)
        self._start_time = time.monotonic()
        self._handlers: dict[str, Callable[[Call], Any]] = {
            "init": self._init,
            "train": self._train,
            "apply-batch": self._apply_batch,
            "describe": self._describe,
            "evaluate": self._evaluate,
            "status": self._status,
            "cancel": self._cancel,
            "shutdown": self._shutdown,
        }

    # --- lifecycle used by the server -------------------------------------------------------

    def admit(self, request: Request) -> Call:
        """Accept a request as it is read; raises MethodNotFound."""
        handler = self._handlers.get(request.method)
        if handler is None:
            raise MethodNotFound(
                f"unknown method {request.method!r}; methods: {', '.join(self._handlers)}",
                method=request.method,
            )
        if isinstance(request.params, list):  # protocol.md §2.1: every method takes named params
            raise InvalidParams("params must be an object (named parameters), not an array", param="params")
        call = Call(request, handler, immediate=request.method in IMMEDIATE_METHODS)
        if request.method == "train":
            call.training = self.trainings.add(request.id)
        return call

    def execute(self, call: Call) -> Any:
        """Run an admitted call and return its result; errors propagate as typed exceptions."""
        if call.immediate:
            return call.handler(call)
        with self._lock:
            self._running = call
            call.started = time.monotonic()
        try:
            return call.handler(call)
        finally:
            with self._lock:
                self._running = None
            self.trainings.forget(call.training)

    def discard(self, call: Call) -> None:
        """The server will not run this call (the engine is stopping)."""
        self.trainings.forget(call.training)

    def cancel_trainings(self) -> list[str | int | None]:
        """Ask every training read so far to stop at its next batch; return their request ids."""
        return self.trainings.cancel_all()

    def close(self) -> None:
        self._log_notifications.close()

    # --- handlers ---------------------------------------------------------------------------

    def _init(self, call: Call) -> dict[str, Any]:
        params = Params(call.request.params)
        client_protocol = params.text("protocol", None)
        if client_protocol is not None and client_protocol.split(".")[0] != PROTOCOL_VERSION.split(".")[0]:
            raise InvalidParams(
                f"client speaks protocol {client_protocol}, this engine speaks {PROTOCOL_VERSION}",
                param="protocol",
                supported=PROTOCOL_VERSION,
            )
        device = params.text("device", None)
        if device is not None:
            TrainOptions.from_dict({"device": device})  # the one place devices are validated
        threads = params.integer("threads", None, minimum=1, maximum=MAX_THREADS)
        wanted = params.items("notifications", [])
        log_level = params.text("log_level", "info")
        if log_level not in LOG_LEVELS:
            raise InvalidParams(f"log_level must be one of {', '.join(LOG_LEVELS)}", param="log_level")
        model_dirs = params.mapping("models", {})
        for name, model_dir in model_dirs.items():
            if not isinstance(model_dir, str) or not model_dir:
                raise InvalidParams(f'models["{name}"] must be a model directory path', param="models")
        trust_module = params.flag("trust_module", False)

        if threads is not None:
            _set_torch_threads(threads)
            self._threads = threads
        device = device or self._device
        loaded = {
            name: self.models.load(model_dir, device or "cpu", trust_module=trust_module)
            for name, model_dir in model_dirs.items()
        }
        self.models.add_named(loaded)  # nothing changes unless every model loaded
        with self._lock:
            self._device = device
        self._notifications = frozenset(kind for kind in wanted if kind in NOTIFICATION_KINDS)
        self._log_notifications.configure("log" in self._notifications, log_level)
        return {
            "protocol": PROTOCOL_VERSION,
            "engine": {"name": "lfengine", "version": __version__},
            "capabilities": {
                "methods": list(self._handlers),
                "formats": list(FORMATS),
                "notifications": list(NOTIFICATION_KINDS),
                "max_message_bytes": self.transport.get("max_message_bytes"),
            },
            "format": self.transport.get("format"),
            "settings": {
                "device": self._device,
                "threads": self._threads,
                "notifications": sorted(self._notifications),
            },
            "models": {name: entry.summary() for name, entry in loaded.items()},
        }

    def _train(self, call: Call) -> dict[str, Any]:
        params = Params(call.request.params)
        meta = params.file_path("meta")
        model_dir = params.text("model")
        name = params.text("name", None)
        trust_module = params.flag("trust_module", False)
        option_values = dict(params.mapping("options", {}))
        if self._device is not None:
            option_values.setdefault("device", self._device)
        if self._threads is not None:
            option_values.setdefault("threads", self._threads)
        options = TrainOptions.from_dict(option_values)
        training = call.training
        training.model_dir = model_dir
        if training.cancel.is_set():
            raise TrainingCancelled("training was cancelled before it started; no model was written")
        training.started = time.monotonic()
        throttle = ProgressThrottle()

        def on_progress(progress: dict[str, Any]) -> None:
            training.progress = progress  # status always shows the latest, throttled or not
            if "progress" in self._notifications and throttle.due(progress):
                self._notify("progress", {"id": call.request.id, "progress": progress})

        from lfengine import service

        result = dict(
            service.train(
                meta,
                model_dir,
                options,
                on_progress=on_progress,
                cancel=training.cancel,
                trust_module=trust_module,
            )
        )
        if result.get("stopped") != "no-train":
            self.models.reload_after_training(
                result.get("model_dir", model_dir),
                name,
                self._device or "cpu",
                trust_module=trust_module,
                named_modules=options.named_modules(),
            )
            if name is not None:
                result["name"] = name
        return result

    def _apply_batch(self, call: Call) -> dict[str, Any]:
        params = Params(call.request.params)
        model = self._resolve(params)
        instances = params.items("instances")
        distribution = params.flag("distribution", False)
        result: dict[str, Any] = {"predictions": model.apply(instances, distribution=distribution)}
        if distribution:
            result["labels"] = list(model.labels)
        return result

    def _describe(self, call: Call) -> dict[str, Any]:
        params = Params(call.request.params)
        model = params.text("model", None)
        meta = params.file_path("meta", None)
        if (model is None) == (meta is None):
            raise InvalidParams('give either "model" (a loaded model or a model directory) or "meta"')
        if model is not None:
            return self._resolve(params).describe()
        options = TrainOptions.from_dict(params.mapping("options", {}))
        from lfengine import service

        return service.describe(meta, options)

    def _evaluate(self, call: Call) -> dict[str, Any]:
        params = Params(call.request.params)
        model = self._resolve(params)
        return model.evaluate(params.file_path("data"))

    def _status(self, call: Call) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            running = self._running
        training = self.trainings.running()
        status: dict[str, Any] = {"state": "idle", "running": None, "training": None}
        if running is not None:
            status["state"] = "busy"
            status["running"] = {
                "method": running.request.method,
                "id": running.request.id,
                "seconds": now - running.started,
            }
        if training is not None:
            status["state"] = "training"
            status["training"] = training.status(now)
        status.update(
            models=self.models.summaries(),
            uptime=now - self._start_time,
            protocol=PROTOCOL_VERSION,
            version=__version__,
        )
        return status

    def _cancel(self, call: Call) -> dict[str, Any]:
        return {"cancelled": self.cancel_trainings()}

    def _shutdown(self, call: Call) -> dict[str, Any]:
        self.shutdown_requested = True
        return {}

    # --- models ---------------------------------------------------------------------------

    def _resolve(self, params: Params) -> Any:
        """The request's ``model`` (protocol.md §5), loaded now if need be."""
        model = params.text("model")
        trust_module = params.flag("trust_module", False)
        return self.models.resolve(model, self._device or "cpu", trust_module=trust_module)


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
