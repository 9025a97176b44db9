"""Training progress for people: a one-line bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import logging
import time
from typing import Any, TextIO

log = logging.getLogger(__name__)


class ProgressDisplay:
    """Receives the trainer's progress dicts (see lfengine.trainer) and shows them on ``stream``."""

    def __init__(self, stream: TextIO, *, log_interval: float = 10.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.log_interval = log_interval
        self.last_log = 0.0
        self.drawn = False

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()

    def update(self, p: dict[str, Any]) -> None:
        done = p["batch"] / max(p["batches"], 1)
        metrics = " ".join(f"{k} {v:.4f}" for k, v in p["metrics"].items() if k != "loss")
        text = (
            f"epoch {p['epoch']} [{'#' * int(done * 20):20}] {p['batch']}/{p['batches']} "
            f"loss {p['loss']:.4f} {metrics} elapsed {_clock(p['elapsed'])} eta {_clock(p['eta'])}"
        )
        if self.tty:
            self.stream.write("\r" + text[:150].ljust(150))
            self.stream.flush()
            self.drawn = True
        elif p["metrics"] or time.monotonic() - self.last_log >= self.log_interval:
            self.last_log = time.monotonic()
            log.info("%s", text)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"
