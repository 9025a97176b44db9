"""A real ``lfengine serve`` process driven frame by frame, its stdout decoded strictly.

The reader thread decodes stdout as the framing demands (JSON lines or a msgpack stream) and
queues every message; bytes that do not decode are queued as ``Garbage`` (stdout must carry
protocol only). Another thread watches stderr for Python tracebacks, noting which frame was
being answered when one appeared.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

REPO = Path(__file__).resolve().parents[2]
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class Garbage:
    """Bytes on stdout that are not a protocol message."""

    data: bytes
    reason: str


class Exited:
    """Queued once stdout reaches end of file."""


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def is_response(msg: Any) -> bool:
    """A JSON-RPC 2.0 response of protocol.md §2.2 (result or a typed error object)."""
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0" or "id" not in msg:
        return False
    if ("result" in msg) == ("error" in msg):
        return False
    if "error" in msg:
        err = msg["error"]
        return (
            isinstance(err, dict)
            and type(err.get("code")) is int
            and isinstance(err.get("message"), str)
            and isinstance(err.get("data"), dict)
        )
    return True


def is_notification(msg: Any) -> bool:
    return (
        isinstance(msg, dict)
        and msg.get("jsonrpc") == "2.0"
        and "id" not in msg
        and msg.get("method") in ("progress", "log")
        and isinstance(msg.get("params"), dict)
    )


def close_process(proc: subprocess.Popen, timeout: float) -> int | None:
    """Close the child's stdin and wait for its exit code; kill it and return None after ``timeout``."""
    try:
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
    except OSError:
        pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
        return None


class Engine:
    """One ``lfengine serve`` child; ``frame`` is the index of the frame being answered."""

    def __init__(self, fmt: str, cwd: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.fmt = fmt
        self.frame = -1
        self.tracebacks: list[tuple[int, str]] = []
        self.messages: queue.Queue = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lfengine", "serve", "--format", fmt, *extra_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=engine_env(),
        )
        self._stderr_tail: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    # --- output ---------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        out = self.proc.stdout
        assert out is not None
        if self.fmt == "json":
            for line in out:
                try:
                    if not line.endswith(b"\n") or not line.isascii():
                        raise ValueError("not an ASCII line ending in a newline")
                    self.messages.put(json.loads(line))
                except ValueError as exc:
                    self.messages.put(Garbage(line[:300], str(exc)))
        else:
            unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
            while True:
                chunk = out.read1(1 << 16)
                if not chunk:
                    break
                unpacker.feed(chunk)
                try:
                    for msg in unpacker:
                        self.messages.put(msg)
                except Exception as exc:
                    self.messages.put(Garbage(chunk[:300], f"{type(exc).__name__}: {exc}"))
                    break
        self.messages.put(Exited())

    def _read_stderr(self) -> None:
        err = self.proc.stderr
        assert err is not None
        for raw in err:
            line = raw.decode("utf-8", "replace")
            self._stderr_tail = (self._stderr_tail + [line])[-40:]
            if TRACEBACK in line:
                self.tracebacks.append((self.frame, line))

    def stderr_tail(self, lines: int = 15) -> str:
        return "".join(self._stderr_tail[-lines:])

    def next_message(self, timeout: float) -> Any:
        """The next message on stdout; None on timeout."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    # --- input ----------------------------------------------------------------------------------
    def send(self, data: bytes) -> bool:
        """Write and flush; False when the engine no longer reads."""
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False

    def encode(self, message: dict) -> bytes:
        if self.fmt == "json":
            return (json.dumps(message) + "\n").encode()
        return msgpack.packb(message, use_bin_type=True)

    def request(self, message: dict, timeout: float) -> Any:
        """Send one request and return its response (skipping notifications); None on timeout."""
        if not self.send(self.encode(message)):
            return None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.next_message(left)
            if msg is None or isinstance(msg, (Garbage, Exited)):
                return msg
            if is_response(msg) and msg["id"] == message.get("id"):
                return msg
        return None

    def close(self, timeout: float) -> int | None:
        return close_process(self.proc, timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
