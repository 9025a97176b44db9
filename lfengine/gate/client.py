"""Drive a data directory's wrapper scripts exactly as the GATE LF plugin does.

Same command lines (gate-plugin.md §6.1, §6.2), working directory (the data directory),
environment (§6.3), and conversation: one request line, then block for one reply line (§7.1).
Used by the end-to-end tests and the latency benchmark; handy to check a data directory by hand.
Unix only (replies are awaited with select on the pipe).
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path
from typing import IO

from lfengine.gate.wrapper import WRAPPER_NAME

META_NAME = "crvd.meta.json"
MODEL_PREFIX_NAME = f"{WRAPPER_NAME}.model"


def gate_environment(datadir: Path, python: str) -> dict[str, str]:
    """The parent environment plus what the plugin exports."""
    env = dict(os.environ)
    env.update(WRAPPER_HOME=str(datadir / WRAPPER_NAME), GATE_LF_DATA_DIR=str(datadir), PYTHON_BIN=python)
    return env


def run_training(
    datadir: Path, params: list[str], *, python: str, timeout: float = 600.0
) -> subprocess.CompletedProcess:
    """``train.sh <dataDir>/crvd.meta.json <dataDir>/FileJsonPyTorch.model [param ...]``, stdin closed."""
    datadir = Path(datadir).resolve()
    command = [
        str(datadir / WRAPPER_NAME / "train.sh"),
        str(datadir / META_NAME),
        str(datadir / MODEL_PREFIX_NAME),
        *params,
    ]
    return subprocess.run(
        command,
        cwd=datadir,
        env=gate_environment(datadir, python),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )


class ApplyProcess:
    """``apply.sh <prefix> <meta> <wrapperdir> [param ...]``, talked to one line at a time."""

    def __init__(self, datadir: Path, params: list[str] | None = None, *, python: str, stderr: IO) -> None:
        datadir = Path(datadir).resolve()
        command = [
            str(datadir / WRAPPER_NAME / "apply.sh"),
            str(datadir / MODEL_PREFIX_NAME),
            str(datadir / META_NAME),
            str(datadir / WRAPPER_NAME),
            *(params or []),
        ]
        self.process = subprocess.Popen(
            command,
            cwd=datadir,
            env=gate_environment(datadir, python),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        self._pending = b""

    def request(self, line: bytes | str, *, timeout: float = 120.0, newline: bytes = b"\n") -> bytes:
        """Send one request line and return the reply line (with its newline)."""
        data = line.encode("utf-8") if isinstance(line, str) else line
        assert self.process.stdin is not None
        self.process.stdin.write(data + newline)
        self.process.stdin.flush()
        return self.read_reply(timeout=timeout)

    def read_reply(self, *, timeout: float = 120.0) -> bytes:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError(f"no reply within {timeout} s")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError(f"the apply process closed its stdout (exit code {self.process.poll()})")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line + b"\n"

    def close(self, *, stop_line: bytes | None = None, timeout: float = 60.0) -> int:
        """End the conversation (EOF, or a STOP line first) and return the exit code."""
        assert self.process.stdin is not None
        if stop_line is not None:
            self.process.stdin.write(stop_line)
            self.process.stdin.flush()
        self.process.stdin.close()
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()

    def __enter__(self) -> ApplyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
