"""When a training run reports, validates and stops early: the schedule the options set, and the
signals (cancel, stop file) that end a run before its time."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Schedule:
    """When to validate and report, and what decides the best model."""

    es_metric: str  # loss | accuracy | f1 (span F1 for chunk labels, macro F1 otherwise) | mse
    validate_every_epochs: int = 1
    validate_every_batches: int | None = None
    validate_every_instances: int | None = None
    report_every_batches: int | None = None
    report_every_instances: int | None = None

    def report_due(self, batches: int, instances: int, size: int) -> bool:
        """After a batch of ``size`` items: is a log line of the running loss due?"""
        return _due(self.report_every_batches, batches, 1) or _due(
            self.report_every_instances, instances, size
        )

    def validation_due(self, batches: int, instances: int, size: int) -> bool:
        """After a batch of ``size`` items: is a validation inside the epoch due?"""
        return _due(self.validate_every_batches, batches, 1) or _due(
            self.validate_every_instances, instances, size
        )


def _due(every: int | None, counter: int, step: int) -> bool:
    """True when ``counter`` passed a multiple of ``every`` in its last step of ``step``."""
    return bool(every) and (counter // every) > ((counter - step) // every)


@dataclass
class StopSignals:
    """Ways to end training early; each keeps the best model."""

    cancel: threading.Event | None = None
    stop_file: Path | None = None
    #: the first reason seen, kept: the stop file is removed when seen, and a signal seen during
    #: a classical model's fit must still end the run at its first batch
    seen: str | None = field(default=None, init=False)

    def reason(self) -> str | None:
        if self.seen is not None:
            return self.seen
        if self.cancel is not None and self.cancel.is_set():
            self.seen = "cancelled"
        elif self.stop_file is not None and self.stop_file.exists():
            try:
                self.stop_file.unlink()
            except OSError:
                pass
            self.seen = "stop-file"
        return self.seen
