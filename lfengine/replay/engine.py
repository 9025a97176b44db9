"""A real ``python -m lfengine serve`` child process, driven the way a client drives it."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import msgpack

from lfengine.replay.session import REPO, strict_json

READ_BYTES = 1 << 16


class EngineProcess:
    """Writes never block while output waits to be read, and every wait has a deadline."""

    def __init__(self, fmt: str, args: list[str]) -> None:
        self.fmt = fmt
        self.stderr = tempfile.TemporaryFile()
        command = [sys.executable, "-m", "lfengine", "serve", *args]
        self.process = subprocess.Popen(
            command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr
        )
        self._to_engine = self.process.stdin.fileno()
        self._from_engine = self.process.stdout.fileno()
        os.set_blocking(self._to_engine, False)
        self._pending = b""
        self._unpacker = msgpack.Unpacker(raw=False)
        self.messages: list[Any] = []  # everything received, in order
        self.problems: list[str] = []  # output that breaks the framing rules
        self.closed_output = False

    @property
    def responses(self) -> int:
        return sum(1 for m in self.messages if isinstance(m, dict) and "id" in m)

    def refused(self, request_id: Any) -> bool:
        """Whether the latest response to ``request_id`` is an error."""
        replies = [m for m in self.messages if isinstance(m, dict) and m.get("id") == request_id]
        return bool(replies) and "error" in replies[-1]

    def notifications(self, method: str) -> int:
        return sum(
            1 for m in self.messages if isinstance(m, dict) and "id" not in m and m.get("method") == method
        )

    def write(self, data: bytes, deadline: float) -> bool:
        """Send all of ``data``, reading output meanwhile; False if the engine stopped reading."""
        view = memoryview(data)
        while view:
            readable, writable, _ = select.select([self._from_engine], [self._to_engine], [], _left(deadline))
            if readable:
                self._read()
            if writable:
                try:
                    view = view[os.write(self._to_engine, view[:READ_BYTES]) :]
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    return False
            elif not readable:
                raise TimeoutError("the engine stopped reading its input")
        return True

    def wait_for(self, condition: Callable[[], bool], deadline: float) -> bool:
        """Read until ``condition()`` holds; False when the engine closed its output first."""
        while not condition():
            if self.closed_output:
                return False
            readable, _, _ = select.select([self._from_engine], [], [], _left(deadline))
            if not readable:
                raise TimeoutError("no response before the deadline")
            self._read()
        return True

    def finish(self, deadline: float) -> int:
        """Close the engine's input, read everything it still sends, and return its exit code."""
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        self.wait_for(lambda: False, deadline)
        return self.process.wait(timeout=_left(deadline))

    def error_output(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.stderr.close()

    def _read(self) -> None:
        data = os.read(self._from_engine, READ_BYTES)
        if not data:
            self.closed_output = True
            if self._pending.strip():
                self.problems.append(f"output ends inside a message: {self._pending[:80]!r}")
            return
        if self.fmt == "msgpack":
            self._unpacker.feed(data)
            self.messages.extend(self._unpacker)
            return
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            if max(line, default=0) >= 0x80:
                self.problems.append(f"a JSON line is not ASCII-only: {line[:80]!r}")
            try:
                self.messages.append(strict_json(line))
            except ValueError as exc:
                self.problems.append(f"output line is not JSON ({exc}): {line[:80]!r}")


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
