"""``log`` notifications: lfengine's log records forwarded to a client that asked for them in
``init`` (protocol.md §6.2)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

Notify = Callable[[str, dict[str, Any]], None]


class LogNotifications:
    """Forwarding of the engine's log records, switched by each ``init``."""

    def __init__(self, notify: Notify) -> None:
        self._notify = notify
        self._handler: _LogNotifier | None = None

    def configure(self, enabled: bool, level: str) -> None:
        engine_logger = logging.getLogger("lfengine")
        if not enabled:
            self.close()
            return
        if self._handler is None:
            self._handler = _LogNotifier(self._notify)
            engine_logger.addHandler(self._handler)
        self._handler.setLevel(level.upper())
        if engine_logger.getEffectiveLevel() > self._handler.level:
            engine_logger.setLevel(self._handler.level)

    def close(self) -> None:
        if self._handler is not None:
            logging.getLogger("lfengine").removeHandler(self._handler)
            self._handler = None


class _LogNotifier(logging.Handler):
    """Forwards lfengine log records to the client as ``log`` notifications (opt-in)."""

    _quiet_prefixes = ("lfengine.server", "lfengine.protocol")  # logger names, not module paths

    def __init__(self, notify: Notify) -> None:
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
