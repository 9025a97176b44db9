"""The train requests of one engine process, from the moment each is read until it ends.

A train request can be cancelled while it waits behind others and while it runs, and ``status``
shows the running one with its latest progress; the reader thread (cancel, status) and the
worker thread (train) share this registry, hence the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROGRESS_INTERVAL_SECONDS = 0.5  # protocol.md §6.1: the most frequent a plain progress notification goes out


@dataclass(eq=False)  # identity: each train request is its own entry
class Training:
    """A train request from the moment it is read: cancellable before and while it runs."""

    request_id: str | int | None
    cancel: threading.Event = field(default_factory=threading.Event)
    model_dir: str | None = None
    started: float | None = None
    progress: dict[str, Any] | None = None

    def status(self, now: float) -> dict[str, Any]:
        """What ``status`` shows of a running training (protocol.md)."""
        return {
            "id": self.request_id,
            "model_dir": self.model_dir,
            "seconds": now - self.started,
            "cancelling": self.cancel.is_set(),
            "progress": self.progress,
        }


class Trainings:
    """The train requests read and not yet finished, in the order they were read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[Training] = []

    def add(self, request_id: str | int | None) -> Training:
        training = Training(request_id)
        with self._lock:
            self._entries.append(training)
        return training

    def forget(self, training: Training | None) -> None:
        with self._lock:
            if training is not None and training in self._entries:
                self._entries.remove(training)

    def cancel_all(self) -> list[str | int | None]:
        """Ask every training read so far to stop at its next batch; return their request ids."""
        with self._lock:
            trainings = list(self._entries)
        for training in trainings:
            training.cancel.set()
        return [training.request_id for training in trainings]

    def running(self) -> Training | None:
        """The training that has started (at most one: requests run one at a time)."""
        with self._lock:
            return next((t for t in self._entries if t.started is not None), None)


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
