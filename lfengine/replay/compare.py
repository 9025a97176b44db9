"""What a replay compares, and how (the rules are listed in tests/sessions/README.md).

Responses and milestone notifications are compared in order, member by member. Not compared:
the members protocol.md §10 calls volatile (present, value ignored); floats beyond the
tolerance below; the time-throttled ``progress`` notifications and every ``log`` notification,
whose number and text depend on the machine and on log wording (their shape is checked).
"""

from __future__ import annotations

import json
import math
from typing import Any

VOLATILE_KEYS = frozenset({"seconds", "uptime", "elapsed", "eta", "version"})
FLOAT_REL_TOL = 1e-4  # training results may differ in the last bits between CPUs
FLOAT_ABS_TOL = 1e-5
PROGRESS_KEYS = frozenset({"epoch", "batch", "batches", "instances", "loss", "metrics", "elapsed", "eta"})
LOG_KEYS = frozenset({"level", "logger", "message"})
ANY = "$any"
ONE_OF = "$one_of"


def is_milestone(progress: dict[str, Any]) -> bool:
    """A progress report the engine always sends: with validation metrics, or an epoch's last batch."""
    return bool(progress["metrics"]) or progress["batch"] == progress["batches"]


def compared_messages(messages: list[Any]) -> tuple[list[Any], list[str]]:
    """The messages a session records, and the shape problems of those it leaves out."""
    kept, problems = [], []
    for message in messages:
        method = message.get("method") if isinstance(message, dict) and "id" not in message else None
        params = message.get("params") if method else None
        if method == "log":
            if not isinstance(params, dict) or set(params) != LOG_KEYS:
                problems.append(f"log notification of the wrong shape: {short(message)}")
            continue
        if method == "progress":
            progress = params.get("progress") if isinstance(params, dict) else None
            if (
                not isinstance(progress, dict)
                or set(progress) != PROGRESS_KEYS
                or set(params) != {"id", "progress"}
            ):
                problems.append(f"progress notification of the wrong shape: {short(message)}")
                continue
            if not is_milestone(progress):
                continue  # time-throttled: how many arrive depends on the machine's speed
        kept.append(message)
    return kept, problems


def compare_messages(expected: list[Any], actual: list[Any], methods: dict[Any, str]) -> list[str]:
    """Differences between the expected messages and everything the engine sent."""
    kept, differences = compared_messages(actual)
    for index in range(max(len(expected), len(kept))):
        label = _label(index, expected[index] if index < len(expected) else kept[index], methods)
        if index >= len(kept):
            differences.append(f"{label}: missing; expected {short(expected[index])}")
        elif index >= len(expected):
            differences.append(f"{label}: unexpected {short(kept[index])}")
        else:
            differences += [f"{label}: {d}" for d in compare(expected[index], kept[index], "")]
    return differences


def _label(index: int, message: Any, methods: dict[Any, str]) -> str:
    if isinstance(message, dict) and "id" in message:
        method = methods.get(message["id"]) if isinstance(message["id"], (str, int)) else None
        return f"message {index + 1} (response to id {message['id']!r}{', ' + method if method else ''})"
    method = message.get("method") if isinstance(message, dict) else None
    return f"message {index + 1} ({method or 'message'} notification)"


def compare(expected: Any, actual: Any, where: str) -> list[str]:
    """Differences between an expected value (which may hold matchers) and an actual one."""
    if expected == ANY:
        return []
    if isinstance(expected, dict) and set(expected) == {ONE_OF}:
        if any(not compare(option, actual, where) for option in expected[ONE_OF]):
            return []
        return [f"{where or 'value'}: matches none of the expected alternatives; got {short(actual)}"]
    if isinstance(expected, float) and isinstance(actual, float):
        if math.isclose(expected, actual, rel_tol=FLOAT_REL_TOL, abs_tol=FLOAT_ABS_TOL):
            return []
    elif isinstance(expected, dict) and isinstance(actual, dict):
        differences = []
        for key in [*expected, *(k for k in actual if k not in expected)]:
            path = f"{where}.{key}" if where else key
            if key not in actual:
                differences.append(f"{path}: missing")
            elif key not in expected:
                differences.append(f"{path}: unexpected member {short(actual[key])}")
            elif key not in VOLATILE_KEYS:
                differences += compare(expected[key], actual[key], path)
        return differences
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where or 'value'}: expected {len(expected)} items, got {len(actual)}: {short(actual)}"]
        return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in compare(e, a, f"{where}[{i}]")]
    elif type(expected) is type(actual) and expected == actual:
        return []  # the same JSON type too: 1 is not 1.0, and true is not 1
    return [f"{where or 'value'}: expected {short(expected)}, got {short(actual)}"]


def short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."
