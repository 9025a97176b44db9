"""Method table and handlers of the resident engine; holds the models loaded in this process.

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
from dataclasses import dataclass, field
from typing import Any

from lfengine import __version__
from lfengine.errors import TrainingCancelled
from lfengine.model_registry import ModelRegistry
from lfengine.options import MAX_THREADS, TrainOptions
from lfengine.protocol.envelope import PROTOCOL_VERSION, InvalidParams, MethodNotFound, Params, Request
from lfengine.protocol.framing import FORMATS

log = logging.getLogger(__name__)

NOTIFICATION_KINDS = ("progress", "log")
LOG_LEVELS = ("debug", "info", "warning", "error")
IMMEDIATE_METHODS = frozenset({"status", "cancel"})
PROGRESS_INTERVAL_SECONDS = 0.5  # protocol.md §6.1: the most frequent a plain progress notification goes out


@dataclass(eq=False)  # identity: each train request is its own entry
class Training:
    """A train request from the moment it is read: cancellable before and while it runs."""

    request_id: str | int | None
    cancel: threading.Event = field(default_factory=threading.Event)
    model_dir: str | None = None
    started: float | None = None
    progress: dict[str, Any] | None = None


class ProgressThrottle:
    """Which training progress reports become ``progress`` notifications (protocol.md §6.1).

    The trainer reports after every batch, far more often than a client can use; a client wants
    a steady pulse and every milestone. So: the first report, then at most one every
    ``interval`` seconds, plus always the milestones: a report that carries validation metrics
    and the report of an epoch's last batch.
    """

    def __init__(
        self, interval: float = PROGRESS_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._last_sent: float | None = None

    def due(self, progress: dict[str, Any]) -> bool:
        now = self._clock()
        milestone = bool(progress.get("metrics")) or progress.get("batch") == progress.get("batches")
        if milestone or self._last_sent is None or now - self._last_sent >= self._interval:
            self._last_sent = now
            return True
        return False


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
        self._trainings: list[Training] = []
        self._running: Call | None = None
        self._device: str | None = None
        self._threads: int | None = None
        self._notifications: frozenset[str] = frozenset()
        self._log_handler: _LogNotifier | None = None
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
            call.training = Training(request.id)
            with self._lock:
                self._trainings.append(call.training)
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
                self._forget_training(call)

    def discard(self, call: Call) -> None:
        """The server will not run this call (the engine is stopping)."""
        with self._lock:
            self._forget_training(call)

    def cancel_trainings(self) -> list[str | int | None]:
        """Ask every training read so far to stop at its next batch; return their request ids."""
        with self._lock:
            trainings = list(self._trainings)
        for training in trainings:
            training.cancel.set()
        return [training.request_id for training in trainings]

    def close(self) -> None:
        if self._log_handler is not None:
            logging.getLogger("lfengine").removeHandler(self._log_handler)
            self._log_handler = None

    def _forget_training(self, call: Call) -> None:
        if call.training is not None and call.training in self._trainings:
            self._trainings.remove(call.training)

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
        self._configure_log_notifications(log_level)
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
        meta = params.text("meta")
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
            self.models.reload_after_training(result.get("model_dir", model_dir), name, self._device or "cpu")
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
        meta = params.text("meta", None)
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
        return model.evaluate(params.text("data"))

    def _status(self, call: Call) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            running = self._running
            trainings = [t for t in self._trainings if t.started is not None]
        status: dict[str, Any] = {"state": "idle", "running": None, "training": None}
        if running is not None:
            status["state"] = "busy"
            status["running"] = {
                "method": running.request.method,
                "id": running.request.id,
                "seconds": now - running.started,
            }
        if trainings:
            training = trainings[0]
            status["state"] = "training"
            status["training"] = {
                "id": training.request_id,
                "model_dir": training.model_dir,
                "seconds": now - training.started,
                "cancelling": training.cancel.is_set(),
                "progress": training.progress,
            }
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

    # --- notifications ----------------------------------------------------------------------

    def _configure_log_notifications(self, level: str) -> None:
        engine_logger = logging.getLogger("lfengine")
        if "log" in self._notifications:
            if self._log_handler is None:
                self._log_handler = _LogNotifier(self._notify)
                engine_logger.addHandler(self._log_handler)
            self._log_handler.setLevel(level.upper())
            if engine_logger.getEffectiveLevel() > self._log_handler.level:
                engine_logger.setLevel(self._log_handler.level)
        else:
            self.close()


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class _LogNotifier(logging.Handler):
    """Forwards lfengine log records to the client as ``log`` notifications (opt-in)."""

    _quiet_prefixes = ("lfengine.server", "lfengine.protocol")

    def __init__(self, notify: Callable[[str, dict[str, Any]], None]) -> None:
        super().__init__()
        self._notify = notify
        self._busy = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(self._quiet_prefixes) or getattr(self._busy, "active", False):
            return  # the transport's own records could recurse into the transport
        self._busy.active = True
        try:
            self._notify(
                "log",
                {"level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()},
            )
        except Exception:
            self.handleError(record)
        finally:
            self._busy.active = False
