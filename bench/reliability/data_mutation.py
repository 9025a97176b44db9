"""Data-file mutation: seeded corruptions of the shared LF files, trained by a real engine.

Each case writes a mutated copy of a small slice of one LF pair and sends one ``train`` (one
epoch) to a long-lived ``lfengine serve``; a handful of cases also go through the command line.
The expectation comes from lf-format.md: a mutation that makes a line invalid (bad JSON,
bad UTF-8, wrong arity, wrong value type, NaN/infinity, an unknown label, labels not matching
the elements) must fail with a typed error naming the data file and that line (1002, data.file,
data.line); benign edits (a deleted, duplicated or blank line, CRLF line ends, null values,
an empty sequence) must train; a meta mutation either trains or fails with a typed error naming
the meta file. Never a traceback, never -32603, never a bad line trained.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.reliability.corpus import slice_lfdata
from bench.reliability.engine import TRACEBACK, Engine, engine_env, is_response
from bench.reliability.tally import Tally

PAIRS = ["class-ionosphere", "class-ngram-sp1", "class-window-pos1", "seq-pos1", "seq-pos2"]
LINES = 12


@dataclass
class Case:
    pair: str
    how: str
    meta: str  # meta file text
    data: bytes
    expect: str  # "train", "line" (error at `line` of the data file), "meta" (train or meta error)
    line: int | None = None


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]  # every line ends with \n


def _join(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def _values(record: list, is_sequence: bool, rng: random.Random) -> tuple[list, int]:
    """The feature vector to mutate in a record and its place (a random element of a sequence)."""
    if is_sequence:
        if not record[0]:
            raise LookupError("empty sequence")
        k = rng.randrange(len(record[0]))
        return record[0][k], k
    return record[0], -1


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "true"
    if isinstance(value, (int, float)):
        return "x" + str(value)
    if isinstance(value, str):
        return 12.5
    if isinstance(value, list):
        return 7
    return {"a": 1}


# Each line mutation takes (rng, record, is_sequence) and returns (new line text, expectation).
def _m_wrong_type(rng, record, seq):
    vec, _ = _values(record, seq, rng)
    j = rng.randrange(len(vec))
    vec[j] = _wrong_type(vec[j])
    return json.dumps(record), "line"


def _m_nan(rng, record, seq):
    vec, _ = _values(record, seq, rng)
    j = rng.randrange(len(vec))
    token = rng.choice(["NaN", "Infinity", "-Infinity", "1e999"])
    vec[j] = "@@"
    return json.dumps(record).replace('"@@"', token), "line"


def _m_huge_int(rng, record, seq):
    vec, _ = _values(record, seq, rng)
    j = rng.randrange(len(vec))
    vec[j] = "@@"
    return json.dumps(record).replace('"@@"', "1" + "0" * 400), "line"


def _m_arity(rng, record, seq):
    vec, _ = _values(record, seq, rng)
    if rng.random() < 0.5:
        vec.pop(rng.randrange(len(vec)))
    else:
        vec.append(vec[0])
    return json.dumps(record), "line"


def _m_unknown_label(rng, record, seq):
    if seq:
        record[1][rng.randrange(len(record[1]))] = "NO-SUCH-LABEL"
    else:
        record[1] = rng.choice(["NO-SUCH-LABEL", 3, None, ["g"]])
    return json.dumps(record), "line"


def _m_label_count(rng, record, seq):
    if not seq:
        record.append("extra")  # [features, target, extra]: not a training record
    elif rng.random() < 0.5:
        record[1].append(record[1][0])
    else:
        record[1].pop()
    return json.dumps(record), "line"


def _m_not_a_pair(rng, record, seq):
    return json.dumps(rng.choice([record[0], {"features": record[0]}, [record[0]], "text", 5])), "line"


def _m_null(rng, record, seq):
    vec, _ = _values(record, seq, rng)
    vec[rng.randrange(len(vec))] = None
    return json.dumps(record), "train"


def _m_empty_sequence(rng, record, seq):
    if not seq:
        return json.dumps(record), "train"
    return "[[],[]]", "train"


LINE_MUTATIONS: dict[str, Callable] = {
    "wrong-type": _m_wrong_type,
    "nan": _m_nan,
    "huge-int": _m_huge_int,
    "arity": _m_arity,
    "unknown-label": _m_unknown_label,
    "label-count": _m_label_count,
    "not-a-pair": _m_not_a_pair,
    "null-value": _m_null,
    "empty-sequence": _m_empty_sequence,
}


def _data_case(rng: random.Random, pair: str, meta: str, data: bytes, is_sequence: bool) -> Case:
    lines = _lines(data)
    n = rng.randrange(len(lines))
    lineno = n + 1
    kind = rng.choice(
        list(LINE_MUTATIONS)
        + ["truncate", "truncate-file", "bad-utf8", "delete", "duplicate", "blank", "crlf"]
    )
    how = f"{kind} at line {lineno}"
    if kind in LINE_MUTATIONS:
        record = json.loads(lines[n])
        try:
            text, expect = LINE_MUTATIONS[kind](rng, record, is_sequence)
        except LookupError:
            text, expect = lines[n].decode(), "train"
        lines[n] = text.encode("utf-8")
        return Case(pair, how, meta, _join(lines), expect, lineno)
    if kind == "truncate":
        cut = rng.randrange(1, len(lines[n]))
        lines[n] = lines[n][:cut]
        return Case(pair, how + f" after byte {cut}", meta, _join(lines), "line", lineno)
    if kind == "truncate-file":  # the export died mid-line: no final newline
        cut = rng.randrange(1, len(lines[n]))
        return Case(pair, how, meta, _join(lines[:n]) + lines[n][:cut], "line", lineno)
    if kind == "bad-utf8":
        pos = rng.randrange(len(lines[n]))
        lines[n] = lines[n][:pos] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]) + lines[n][pos:]
        return Case(pair, how, meta, _join(lines), "line", lineno)
    if kind == "delete":
        del lines[n]
        return Case(pair, how, meta, _join(lines), "train")
    if kind == "duplicate":
        lines.insert(n, lines[n])
        return Case(pair, how, meta, _join(lines), "train")
    if kind == "blank":
        lines.insert(n, rng.choice([b"", b"  ", b"\r"]))
        return Case(pair, how, meta, _join(lines), "train")
    return Case(pair, "crlf", meta, b"".join(line + b"\r\n" for line in lines), "train")


def _meta_case(rng: random.Random, pair: str, meta: str, data: bytes) -> Case:
    kind = rng.choice(
        [
            "truncate",
            "bad-utf8",
            "not-object",
            "drop-key",
            "key-type",
            "stats",
            "datatype",
            "labels",
            "lines-written",
            "features-arity",
        ]
    )
    obj = json.loads(meta)
    how = f"meta {kind}"
    if kind == "truncate":
        return Case(pair, how, meta[: rng.randrange(len(meta))], data, "meta")
    if kind == "bad-utf8":
        pos = rng.randrange(len(meta))
        return Case(pair, how, meta[:pos] + "\udcff" + meta[pos:], data, "meta")
    if kind == "not-object":
        return Case(pair, how, json.dumps(rng.choice([[obj], "meta", 1, None])), data, "meta")
    if kind == "drop-key":
        key = rng.choice(sorted(obj))
        del obj[key]
        how += f" {key}"
    elif kind == "key-type":
        key = rng.choice(sorted(obj))
        obj[key] = rng.choice(["yes", 1, None, [], {}, -1.5])
        how += f" {key}={obj[key]!r}"
    elif kind == "stats":
        stats = obj.get("featureStats") or {}
        if stats:
            name = rng.choice(sorted(stats))
            field = rng.choice(sorted(stats[name]) or ["mean"])
            stats[name][field] = rng.choice(["@NaN@", None, "x", -1, [], 1e308])
            how += f" {name}.{field}"
    elif kind == "datatype":
        feature = rng.choice(obj["features"])
        feature[rng.choice(["datatype", "kind", "name", "attrid"])] = rng.choice(["weird", None, 5, ""])
    elif kind == "labels":
        counts = obj["targetStats"].get("stringCounts")
        if counts:
            obj["targetStats"]["stringCounts"] = rng.choice([{}, {"": 1}, {k: -1 for k in counts}, [], "x"])
    elif kind == "lines-written":
        obj["linesWritten"] = rng.choice([0, -5, 10**9, "7"])
    elif kind == "features-arity":
        obj["features"] = (
            obj["features"][:-1] if rng.random() < 0.5 else obj["features"] + obj["features"][:1]
        )
    return Case(pair, how, json.dumps(obj).replace('"@NaN@"', "NaN"), data, "meta")


def make_cases(source: Path, count: int, seed: int) -> list[Case]:
    rng = random.Random(f"data-{seed}")
    pairs = {}
    for pair in PAIRS:
        meta = (source / f"{pair}.meta.json").read_text(encoding="utf-8")
        data = (source / f"{pair}.data.json").read_bytes()
        pairs[pair] = (meta, data, bool(json.loads(meta).get("isSequence")))
    cases = []
    for _ in range(count):
        pair = rng.choice(PAIRS)
        meta, data, is_sequence = pairs[pair]
        if rng.random() < 0.8:
            cases.append(_data_case(rng, pair, meta, data, is_sequence))
        else:
            cases.append(_meta_case(rng, pair, meta, data))
    return cases


def write_case(case: Case, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True)
    meta = directory / f"{case.pair}.meta.json"
    data = directory / f"{case.pair}.data.json"
    meta.write_bytes(case.meta.encode("utf-8", "surrogateescape"))
    data.write_bytes(case.data)
    return meta, data


def judge_reply(case: Case, reply: Any, meta: Path, data: Path) -> tuple[str, str]:
    """The outcome of one case from the engine's train response."""
    if not is_response(reply):
        return "hang" if reply is None else "lost", f"no response: {reply!r:.300}"
    if "result" in reply:
        if case.expect == "line":
            return "lost", f"a bad line was trained silently: {reply['result']!r:.300}"
        return "handled", ""
    error = reply["error"]
    info = error["data"]
    if error["code"] == -32603:
        return "traceback", json.dumps(error)[:600]
    if case.expect == "train":
        return "lost", f"a valid file was refused: {error['message'][:300]}"
    if case.expect == "line":
        if error["code"] != 1002 or info.get("file") != str(data) or info.get("line") != case.line:
            return "lost", f"expected 1002 at {data.name}:{case.line}, got {json.dumps(error)[:400]}"
        if f"{data}:{case.line}" not in error["message"]:
            return "lost", f"the message does not name {data.name}:{case.line}: {error['message'][:300]}"
        return "handled", ""
    if not 1000 <= error["code"] <= 1010 or not (
        str(meta) in error["message"] or str(data) in error["message"]
    ):
        return "lost", f"a meta error that names neither file: {json.dumps(error)[:400]}"
    return "handled", ""


def run_data_mutation(
    lfdata: Path, count: int, *, seed: int, workdir: Path, cli_cases: int = 4, per_process: int = 500
) -> Tally:
    tally = Tally("data-file mutation")
    started = time.monotonic()
    source = slice_lfdata(lfdata, workdir / "source", lines=LINES)
    cases = make_cases(source, count, seed)
    engine: Engine | None = None
    for i, case in enumerate(cases[: count - cli_cases]):
        if engine is None or i % per_process == 0:
            if engine is not None:
                engine.close(120)
            engine = Engine("json", workdir)
        meta, data = write_case(case, workdir / f"case{i}")
        engine.frame = i
        request = {
            "jsonrpc": "2.0",
            "id": i,
            "method": "train",
            "params": {
                "meta": str(meta),
                "model": str(meta.parent / "model"),
                "options": {"max_epochs": 1, "seed": 1, "threads": 1},
            },
        }
        reply = engine.request(request, timeout=300)
        label = f"seed {seed} case {i} {case.pair}: {case.how}"
        outcome, detail = judge_reply(case, reply, meta, data)
        if outcome == "handled" and any(t[0] == i for t in engine.tracebacks):
            outcome, detail = "traceback", engine.stderr_tail()
        tally.add(outcome, label, detail)
        if outcome == "hang" or engine.proc.poll() is not None:
            engine.kill()
            engine = None
    if engine is not None:
        engine.close(120)
    for i, case in enumerate(cases[count - cli_cases :], start=count - cli_cases):
        tally.add(*run_cli_case(case, workdir / f"case{i}", f"seed {seed} case {i} (command line)"))
    tally.seconds = time.monotonic() - started
    return tally


def run_cli_case(case: Case, directory: Path, label: str) -> tuple[str, str, str]:
    """``lfengine train`` on one case: exit 0, or exit 1 with one ERROR line naming file (and line)."""
    meta, data = write_case(case, directory)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lfengine",
            "train",
            str(meta),
            str(directory / "model"),
            "--max-epochs",
            "1",
            "--threads",
            "1",
        ],
        capture_output=True,
        timeout=600,
        env=engine_env(),
    )
    label += f" {case.pair}: {case.how}"
    err = proc.stderr.decode("utf-8", "replace")
    if TRACEBACK in err:
        return "traceback", label, err[-1500:]
    errors = [line for line in err.splitlines() if re.search(r"\bERROR\b", line)]
    if proc.returncode == 0:
        if case.expect == "line":
            return "lost", label, "a bad line was trained silently"
        return "handled", label, ""
    if proc.returncode != 1 or len(errors) != 1:
        return "crash", label, f"exit {proc.returncode}, error lines {errors}\n{err[-800:]}"
    if case.expect == "line" and f"{data}:{case.line}" not in errors[0]:
        return "lost", label, f"the error does not name {data.name}:{case.line}: {errors[0]}"
    if case.expect == "meta" and str(meta) not in errors[0] and str(data) not in errors[0]:
        return "lost", label, f"the error does not name the meta file: {errors[0]}"
    if case.expect == "train":
        return "lost", label, f"a valid file was refused: {errors[0]}"
    return "handled", label, ""
