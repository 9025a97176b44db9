"""Seeded mutations of requests: of the decoded object (shape and values) and of its bytes."""

from __future__ import annotations

import copy
import random
from typing import Any

METHODS = ["init", "train", "apply-batch", "describe", "evaluate", "status", "cancel", "predict", ""]

#: Values swapped in anywhere. No device paths (/dev/zero), no directory outside the fuzzer's
#: scratch directory (a fuzzed train may write a model there) and no mid-sized integers that
#: would make a valid network of tens of gigabytes: the suite must stay safe for a shared machine.
VALUES: list[Any] = [
    None,
    True,
    False,
    -1,
    0,
    1,
    2,
    7,
    2**31,
    2**63 - 1,
    -(2**63),
    0.5,
    -0.0,
    1e308,
    -1e308,
    5e-324,
    "",
    " ",
    "x" * 300,
    "\u00e9\u4e2d\U0001f600",
    "a\u0000b",
    "/nonexistent/file.meta.json",
    ".",  # the engine's working directory: the fuzzer's own scratch directory
    "sub/..",
    [],
    [[]],
    [None],
    {},
    {"a": {"b": {"c": []}}},
    [[1.0] * 34],
    [[["horse"]]],
]
#: Values only JSON can carry (msgpack has no integers beyond 64 bits, no lone surrogates).
JSON_ONLY_VALUES: list[Any] = [10**400, -(10**30), "\ud800", float("nan"), float("inf")]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) into a JSON-like value, the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:8]):  # long instance lists: their head is enough
            out += _paths(v, prefix + (i,))
    return out


def _get(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def _set(root: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    parent = _get(root, path[:-1])
    parent[path[-1]] = new
    return root


def mutate_object(rng: random.Random, obj: Any, *, json_values: bool) -> tuple[Any, str]:
    """One to three structural mutations; returns (object, description)."""
    obj = copy.deepcopy(obj)
    pool = VALUES + (JSON_ONLY_VALUES if json_values else [])
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        paths = _paths(obj)
        path = rng.choice(paths)
        target = _get(obj, path)
        op = rng.choice(
            ("value", "value", "value", "drop", "add", "method", "id", "wrap", "dup", "type", "params")
        )
        if op == "value":
            obj = _set(obj, path, copy.deepcopy(rng.choice(pool)))
        elif op == "drop" and path and isinstance(_get(obj, path[:-1]), (dict, list)):
            parent = _get(obj, path[:-1])
            del parent[path[-1]]
        elif op == "add" and isinstance(target, dict):
            target[rng.choice(["extra", "id", "method", "params", "model", "options", "max_epochs"])] = (
                copy.deepcopy(rng.choice(pool))
            )
        elif op == "add" and isinstance(target, list):
            target.insert(rng.randrange(len(target) + 1), copy.deepcopy(rng.choice(pool)))
        elif op == "method" and isinstance(obj, dict):
            obj["method"] = rng.choice(METHODS)
        elif op == "id" and isinstance(obj, dict):
            obj["id"] = copy.deepcopy(rng.choice([1.5, True, [1], {"a": 1}, "s", -(2**63), 2**63 - 1, None]))
        elif op == "wrap":
            obj = _set(obj, path, [copy.deepcopy(target)])
        elif op == "dup" and isinstance(target, list) and target:
            target.extend(copy.deepcopy(target[: rng.randint(1, len(target))]))
        elif op == "type":
            obj = _set(obj, path, str(target)[:50] if not isinstance(target, str) else [target])
        elif op == "params" and isinstance(obj, dict):
            obj["params"] = copy.deepcopy(rng.choice([[], [1, 2], "x", 3, None, {}]))
        else:
            continue
        done.append(f"{op}@{'/'.join(map(str, path))[:60]}")
    return obj, " ".join(done) or "none"


SPECIAL_BYTES = [b"\x00", b"\xff", b"\xc1", b"\xef\xbb\xbf", b"\r", b"\n", b"\r\n", b"\\", b'"', b"{", b"]"]


def mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """One to three byte-level mutations; returns (bytes, description)."""
    buf = bytearray(data)
    done = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        pos = rng.randrange(len(buf) + 1)
        op = rng.choice(("flip", "insert", "delete", "truncate", "special", "repeat") * 3 + ("random",))
        if op == "flip" and pos < len(buf):
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == "insert":
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == "delete" and pos < len(buf):
            del buf[pos : pos + rng.randint(1, 8)]
        elif op == "truncate":
            del buf[pos:]
        elif op == "special":
            buf[pos:pos] = rng.choice(SPECIAL_BYTES)
        elif op == "repeat" and pos < len(buf):
            buf[pos:pos] = buf[pos : pos + rng.randint(1, 40)]
        elif op == "random":
            buf = bytearray(rng.randbytes(rng.randint(1, 64)))
        else:
            continue
        done.append(f"{op}@{pos}")
    return bytes(buf), " ".join(done) or "none"
