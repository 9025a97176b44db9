"""Training progress for people: a bar that fits the terminal on a TTY, log lines otherwise.

On a terminal the bar is one line, as wide as the terminal (measured at every redraw, so a
resized window gets a bar of its new width), never wider: it is redrawn in place with a carriage
return and an erase-to-end-of-line. Log records that arrive while it is shown are printed above
it: the console log handlers write through ``_AboveBar``, which erases the bar, writes the record
and draws the bar again, so a record is never glued to the bar. Not on a terminal (a pipe, a log
file, CI), the same progress goes out as an occasional log line instead.
"""

from __future__ import annotations

import logging
import os
import signal
import textwrap
import threading
import time
from typing import Any, TextIO

log = logging.getLogger("lfengine.progress")

ERASE_LINE = "\r\x1b[K"
REDRAW_INTERVAL = 0.1  # seconds between two redraws of the bar (more is flicker, and CPU)


def terminal_columns(stream: TextIO, fallback: int = 80) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or fallback
    except (OSError, ValueError, AttributeError):
        return fallback


def clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def plural(n: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def kept_model(best_epoch: int, epochs: int, best: dict[str, float]) -> str:
    """Which model a finished run kept: the best validated epoch, else what it had at the end."""
    if best:
        return f"best epoch {best_epoch}: " + " ".join(f"{k} {v:.4f}" for k, v in best.items())
    if epochs == 0:
        return "kept the model as it was before its first epoch ended (never validated)"
    return f"kept the last epoch's model (epoch {epochs}; nothing was validated)"


def render_bar(p: dict[str, Any], rate: float | None, width: int) -> str:
    """One progress line of at most ``width`` characters: the bar takes what the text leaves."""
    done = p["batch"] / max(p["batches"], 1)
    head = f"epoch {p['epoch']} "
    total = str(p["batches"])
    parts = [f" {p['batch']:>{len(total)}}/{total}", f" loss {p['loss']:.4f}"]
    if rate is None:
        parts.append(" " * 16)  # kept free, so that the bar does not shrink when the rate appears
    else:
        parts.append(f" {rate:>7,.0f} items/s" if rate >= 10 else f" {rate:>7.1f} items/s")
    parts.append(f" eta {clock(p['eta']):>5}")
    # Drop details from the right until the text leaves room for a bar of 10 cells.
    while parts and len(head) + sum(map(len, parts)) + 12 > width:
        parts.pop()
    cells = min(40, width - len(head) - sum(map(len, parts)) - 2)
    if cells < 4:
        return (head + f"{done:.0%}")[:width]
    filled = int(done * cells)
    return f"{head}[{'=' * filled}{' ' * (cells - filled)}]{''.join(parts)}"[:width]


class ProgressDisplay:
    """Receives the trainer's progress dicts (see lfengine.training.trainer) and shows them on ``stream``."""

    def __init__(self, stream: TextIO, *, log_interval: float = 10.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.log_interval = log_interval
        self.last_log = 0.0
        self.last_draw = 0.0
        self.line = ""  # the bar as drawn ("" when none is shown)
        self.last: dict[str, Any] | None = None
        self.first: tuple[float, int] | None = None  # (time, instances) of the first report
        self.lock = threading.RLock()
        self._wrapped: list[tuple[logging.StreamHandler, TextIO]] = []
        self._previous_winch: Any = None
        self.resized = False
        self.hidden = False

    def __enter__(self) -> ProgressDisplay:
        if self.tty:
            above = _AboveBar(self)
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is self.stream:
                    self._wrapped.append((handler, handler.setStream(above)))
            if hasattr(signal, "SIGWINCH") and threading.current_thread() is threading.main_thread():
                self._previous_winch = signal.signal(signal.SIGWINCH, self._on_resize)
        return self

    def __exit__(self, *exc: Any) -> None:
        with self.lock:
            self.erase()
        for handler, stream in self._wrapped:
            handler.setStream(stream)
        self._wrapped.clear()
        if self._previous_winch is not None:
            signal.signal(signal.SIGWINCH, self._previous_winch)
            self._previous_winch = None

    def _on_resize(self, *_: Any) -> None:
        self.resized = True  # redrawn at the next report: writing here could re-enter a write

    def hide(self) -> None:
        """Erase the bar and draw it no more (training is stopping: Ctrl-C)."""
        with self.lock:
            self.hidden = True
            self.erase()

    def rate(self, p: dict[str, Any]) -> float | None:
        """Training items per second since the first report."""
        now = time.monotonic()
        if self.first is None:
            self.first = (now, p["instances"])
        started, instances = self.first
        seconds = now - started
        return (p["instances"] - instances) / seconds if seconds > 0.2 else None

    def update(self, p: dict[str, Any]) -> None:
        rate = self.rate(p)
        self.last = p
        if self.tty:
            if self.hidden:
                return
            now = time.monotonic()
            last_batch = p["batch"] == p["batches"]
            if self.resized or last_batch or now - self.last_draw >= REDRAW_INTERVAL:
                self.resized = False
                self.last_draw = now
                with self.lock:
                    self.draw(render_bar(p, rate, terminal_columns(self.stream) - 1))
        elif not p["metrics"] and time.monotonic() - self.last_log >= self.log_interval:
            # Validations are logged by the trainer, one line each; this fills the time between.
            self.last_log = time.monotonic()
            shown = f", {rate:.0f} items/s" if rate else ""
            log.info(
                "epoch %d: batch %d/%d, loss %.4f%s, eta %s",
                p["epoch"],
                p["batch"],
                p["batches"],
                p["loss"],
                shown,
                clock(p["eta"]),
            )

    def draw(self, line: str) -> None:
        # Ctrl-C's handler runs between any two bytecodes of this thread, so ``hidden`` is read
        # here, at the write, not only where the caller decided to draw (a bar then followed the
        # "interrupted" line); and once more after it, for a signal during the write itself.
        if self.hidden:
            return
        self.stream.write(ERASE_LINE + line)
        self.stream.flush()
        self.line = line
        if self.hidden:
            self.erase()

    def erase(self) -> None:
        if self.line:
            self.stream.write(ERASE_LINE)
            self.stream.flush()
            self.line = ""


class _AboveBar:
    """A stream for log handlers: erases the bar, writes the record, draws the bar again."""

    def __init__(self, display: ProgressDisplay) -> None:
        self.display = display

    def write(self, text: str) -> int:
        d = self.display
        with d.lock:
            line = d.line
            d.erase()
            d.stream.write(fit_lines(text, terminal_columns(d.stream) - 1))
            if line and text.endswith("\n"):
                d.draw(line[: terminal_columns(d.stream) - 1])
        return len(text)


def fit_lines(text: str, width: int, indent: str = "    ") -> str:
    """Wrap each line of ``text`` to ``width`` columns (continuations indented): a terminal that
    wraps by itself would leave the bar's redraw on the wrong line."""
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        out.extend(textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False) or [""])
    return "\n".join(out)

    def flush(self) -> None:
        self.display.stream.flush()
