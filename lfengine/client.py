"""A small Python client of the resident engine (protocol.md), used by the demo and the benchmarks.

It starts ``lfengine serve`` as a child process and speaks JSON lines or msgpack to it:
one request at a time, collecting any notifications that arrive before the response.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import msgpack


class EngineError(Exception):
    """An error response: ``code``, ``message`` and ``data`` as the engine sent them."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")


class EngineClient:
    """``with EngineClient() as engine: engine.call("status")``."""

    def __init__(
        self,
        *,
        fmt: str = "json",
        args: list[str] | None = None,
        on_notification: Callable[[str, dict], None] | None = None,
        stderr: Any = None,
    ) -> None:
        self.fmt = fmt
        self.on_notification = on_notification
        self.ids = itertools.count(1)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lfengine", "serve", "--format", fmt, *(args or [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        self.unpacker = msgpack.Unpacker(raw=False) if fmt == "msgpack" else None

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send(self, message: dict[str, Any]) -> None:
        if self.fmt == "msgpack":
            data = msgpack.packb(message, use_bin_type=True)
        else:
            data = json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n"
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        if self.unpacker is None:
            line = self.process.stdout.readline()
            if not line:
                raise EOFError("the engine closed its output")
            return json.loads(line)
        while True:
            for message in self.unpacker:
                return message
            chunk = self.process.stdout.read1(65536)
            if not chunk:
                raise EOFError("the engine closed its output")
            self.unpacker.feed(chunk)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send a request and wait for its response; notifications go to ``on_notification``."""
        request_id = next(self.ids)
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}})
        while True:
            message = self.receive()
            if "id" not in message:
                if self.on_notification is not None:
                    self.on_notification(message.get("method", ""), message.get("params", {}))
                continue
            if message["id"] != request_id:
                raise RuntimeError(f"response for id {message['id']} while waiting for {request_id}")
            if "error" in message:
                raise EngineError(message["error"])
            return message["result"]

    def close(self, timeout: float = 30.0) -> int:
        """Ask the engine to shut down (if it still runs) and wait for it."""
        if self.process.poll() is None:
            try:
                self.call("shutdown")
            except (EOFError, BrokenPipeError, OSError):
                pass
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
