"""Replaying a session: send its requests in one framing, collect the replies, compare, report."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from lfengine.replay.compare import compare_messages, compared_messages
from lfengine.replay.engine import EngineProcess
from lfengine.replay.session import (
    REQUESTS_SUFFIX,
    Placeholders,
    Session,
    SessionError,
    SessionSkipped,
    Step,
    load_session,
    read_expected,
    session_paths,
    strict_json,
)

TIMEOUT_FACTOR_VARIABLE = "LFENGINE_TEST_TIMEOUT_FACTOR"
DEFAULT_TIMEOUT_FACTOR = 3.0  # generous: several test runs may share a couple of cores


def timeout_factor() -> float:
    """How much longer than on an idle machine every deadline may be (an environment variable)."""
    text = os.environ.get(TIMEOUT_FACTOR_VARIABLE, "")
    try:
        factor = float(text) if text else DEFAULT_TIMEOUT_FACTOR
    except ValueError:
        factor = DEFAULT_TIMEOUT_FACTOR
    return factor if factor > 0 and math.isfinite(factor) else DEFAULT_TIMEOUT_FACTOR


# For one response, one awaited notification, or the engine's exit.
STEP_TIMEOUT_SECONDS = 60.0 * timeout_factor()


@dataclass
class ReplayOutcome:
    session: str
    fmt: str
    differences: list[str]
    messages: list[Any]  # everything the engine sent, paths written as placeholders
    methods: dict[Any, str]  # request id -> method, to read the messages by
    exit_code: int | None
    seconds: float
    stderr: str

    @property
    def ok(self) -> bool:
        return not self.differences


def run_session(session: Session, fmt: str) -> ReplayOutcome:
    """Replay one session in one framing and compare what came back with its expected file."""
    session.check_available()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="lfreplay-"))
    places = Placeholders(tmp)
    engine = EngineProcess(fmt, session.args)
    methods: dict[Any, str] = {}
    differences: list[str] = []
    exit_code = None
    try:
        _drive(session, fmt, engine, places, methods)
        exit_code = engine.finish(time.monotonic() + STEP_TIMEOUT_SECONDS)
    except (TimeoutError, subprocess.TimeoutExpired) as exc:
        differences.append(f"the engine did not answer within {STEP_TIMEOUT_SECONDS:.0f} s: {exc}")
    finally:
        stderr = engine.error_output()
        engine.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    messages = [places.collapse(m) for m in engine.messages]
    if exit_code is not None and exit_code != session.exit_code:
        differences.append(f"exit code: expected {session.exit_code}, got {exit_code}")
    differences += engine.problems
    if session.expected.is_file():
        differences += compare_messages(read_expected(session.expected, fmt), messages, methods)
    else:
        differences.append(
            f"{session.expected} is missing (record it with python -m lfengine.replay --record)"
        )
    seconds = time.monotonic() - started
    return ReplayOutcome(session.name, fmt, differences, messages, methods, exit_code, seconds, stderr)


def _drive(session: Session, fmt: str, engine: EngineProcess, places: Placeholders, methods: dict) -> None:
    """Send the steps; in lockstep unless #nowait, counting the responses each message earns."""
    owed, shut_down = 0, False
    seen: dict[str, int] = {}
    for step in session.steps:
        deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
        if step.kind == "wait":
            count = seen.get(step.text, 0)
            if not engine.wait_for(lambda m=step.text, c=count: engine.notifications(m) > c, deadline):
                return
            continue
        data, earned, value = _encode_step(step, fmt, places, f"{session.requests}:{step.line}")
        if isinstance(value, dict) and isinstance(value.get("id"), (str, int)):
            methods[value["id"]] = str(value.get("method"))
        if len(data) > session.max_message_bytes:
            earned = 1  # refused unread: the refusal is a response even for a notification
        seen = {method: engine.notifications(method) for method in ("progress", "log")}
        if not engine.write(data, deadline) or shut_down:
            continue  # the engine reads nothing after shutdown (protocol.md §4)
        owed += earned
        if step.wait_reply and not engine.wait_for(lambda n=owed: engine.responses >= n, deadline):
            return
        if isinstance(value, dict) and value.get("method") == "shutdown" and "id" in value:
            # A refused shutdown (positional params, say) leaves the engine reading: go on in lockstep.
            shut_down = not (step.wait_reply and engine.refused(value["id"]))


def responses_earned(value: Any) -> int:
    """Responses a decoded message earns (protocol.md §3 rule 1): none for a well-formed notification."""
    if (
        isinstance(value, dict)
        and "id" not in value
        and value.get("jsonrpc") == "2.0"
        and isinstance(value.get("method"), str)
        and value["method"]
        and isinstance(value.get("params"), (dict, type(None)))
    ):
        return 0
    return 1


def _line_responses(line: bytes) -> int:
    if not line.strip():
        return 0  # blank lines are ignored
    try:
        return responses_earned(strict_json(line))
    except ValueError:  # not JSON, or not UTF-8
        return 1


def _encode_step(step: Step, fmt: str, places: Placeholders, where: str) -> tuple[bytes, int, Any]:
    """The bytes to send, the responses they earn, and the decoded message (None for raw bytes)."""
    if step.kind == "bytes":
        try:
            data = bytes.fromhex(step.text)
        except ValueError:
            raise SessionError(f"{where}: #bytes needs hexadecimal digits") from None
        if fmt == "msgpack":
            return data, 1, None  # one malformed message
        return data, sum(_line_responses(line) for line in data.split(b"\n")[:-1]), None
    text = places.expand(step.text, where)
    try:
        value = strict_json(text)
    except ValueError:
        if fmt == "msgpack":
            raise SessionError(f"{where}: not JSON, so it has no msgpack form; use #bytes") from None
        return text.encode("utf-8") + b"\n", 1, None
    if fmt == "msgpack":
        return msgpack.packb(value, use_bin_type=True), responses_earned(value), value
    return text.encode("utf-8") + b"\n", responses_earned(value), value


def record_session(session: Session) -> Path:
    """Write the expected file from a real run in the session's first framing. Read it over, and
    put back any hand-written matchers, before committing it."""
    outcome = run_session(session, session.formats[0])
    kept, problems = compared_messages(outcome.messages)
    if problems or outcome.exit_code != session.exit_code:
        raise SessionError(f"{session.name}: not recorded: {problems or outcome.exit_code}\n{outcome.stderr}")
    lines = []
    for message in kept:
        if outcome.methods.get(message.get("id")) == "init" and "result" in message:
            message["result"]["format"] = "${FORMAT}"
        lines.append(json.dumps(message, ensure_ascii=False) + "\n")
    session.expected.write_text("".join(lines), encoding="utf-8")
    return session.expected


def replay_main(paths: list[str]) -> int:
    """``lfengine replay SESSION...``: 0 when every session matches (a skipped session counts as
    matching), 1 when any differs, 2 when a session file is malformed."""
    status = 0
    for requests in session_paths(paths):
        try:
            session = load_session(requests)
            for fmt in session.formats:
                outcome = run_session(session, fmt)
                shown = f"{session.name} [{fmt}]"
                if outcome.ok:
                    print(f"ok       {shown}: {len(outcome.messages)} messages, {outcome.seconds:.1f} s")
                    continue
                status = max(status, 1)
                print(f"DIFFERS  {shown}: {len(outcome.differences)} difference(s)")
                for difference in outcome.differences[:20]:
                    print(f"    {difference}")
                tail = outcome.stderr[-2000:].splitlines()
                print("    engine stderr (end):\n" + "\n".join("      " + line for line in tail))
        except SessionSkipped as skipped:
            print(f"skipped  {requests.name.removesuffix(REQUESTS_SUFFIX)}: {skipped}")
        except SessionError as exc:
            print(f"ERROR    {exc}")
            status = 2
    sys.stdout.flush()
    return status


def main(argv: list[str] | None = None) -> int:
    """``python -m lfengine.replay [--record] SESSION...``"""
    parser = argparse.ArgumentParser(
        prog="python -m lfengine.replay", description="Replay or record sessions."
    )
    parser.add_argument("sessions", nargs="+", help="session files, base paths or directories")
    parser.add_argument("--record", action="store_true", help="write the expected files from a real run")
    args = parser.parse_args(argv)
    if not args.record:
        return replay_main(args.sessions)
    for requests in session_paths(args.sessions):
        print(f"recorded {record_session(load_session(requests))}")
    return 0
