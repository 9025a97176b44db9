"""Legacy line protocol fuzz: the old apply.sh conversation with real ``gate-apply`` processes.

GATE writes one line per request and blocks on one reply line (gate-plugin.md §7), so the
contract checked here is: every request line - malformed JSON, wrong arity, wrong value types,
binary, CRLF, BOM, blank - gets exactly one ASCII, strict-JSON reply ``{"status": "ok" | "error",
...}``; a valid instance gets ``ok`` with a label of the model; a ``STOP`` line (surrounding
whitespace and CR allowed) ends the process with exit code 0 and no reply, and nothing after it is
answered; anything else that merely looks like STOP is a request like any other.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.reliability.engine import TRACEBACK, close_process, engine_env
from bench.reliability.mutate import mutate_bytes
from bench.reliability.tally import Tally

STOP_VARIANTS = [b"STOP", b"STOP\r", b" STOP ", b"\tSTOP", b"\xef\xbb\xbfSTOP", b"STOP  \r"]
NOT_STOP = [b"stop", b"STOPX", b"STOP STOP", b"S TOP", b'"STOP"', b'["STOP"]', b"STO", b"STOP\x00"]


@dataclass
class Model:
    """A trained model as gate-apply sees it, and valid instances for it."""

    prefix: Path
    meta: Path
    instances: list[Any]
    is_sequence: bool


def valid_instances(data_file: Path, limit: int = 20) -> list[Any]:
    with open(data_file, encoding="utf-8") as handle:
        return [json.loads(line)[0] for _, line in zip(range(limit), handle)]


class ApplyProcess:
    def __init__(self, model: Model, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lfengine",
                "gate-apply",
                str(model.prefix),
                "--cuda",
                "False",
                "--metafile",
                str(model.meta),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=engine_env(),
        )
        self.line = -1
        self.tracebacks: list[int] = []
        self.replies: list[bytes] = []
        self.cond = threading.Condition()
        self.eof = False
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self.cond:
                self.replies.append(raw)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def _stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            if TRACEBACK.encode() in raw:
                self.tracebacks.append(self.line)

    def send(self, data: bytes) -> bool:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def wait_replies(self, count: int, timeout: float) -> list[bytes] | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.replies) < count and not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return list(self.replies)

    def close(self, timeout: float) -> int | None:
        return close_process(self.proc, timeout)


def make_line(rng: random.Random, model: Model) -> tuple[bytes, str, str]:
    """(line without its newline, expectation "ok" | "error" | "any", description)."""
    instance = rng.choice(model.instances)
    text = json.dumps(instance).encode()
    kind = rng.choice(
        ("valid", "crlf", "arity", "arity", "type", "bytes", "bytes", "binary", "blank", "notstop")
    )
    if kind == "valid":
        return rng.choice((text, b"\xef\xbb\xbf" + text, b"  " + text)), "ok", "valid instance"
    if kind == "crlf":
        return text + b"\r", "ok", "valid instance, CRLF"
    if kind == "arity":
        vector = list(instance)
        if model.is_sequence:  # one element of the sequence gets a value too few or too many
            if not vector:
                return b"[[]]", "error", "an element without values"
            k = rng.randrange(len(vector))
            element = list(vector[k])
            if element and rng.random() < 0.5:
                element.pop(rng.randrange(len(element)))
            else:
                element.append("x")
            vector[k] = element
        elif vector and rng.random() < 0.5:
            vector.pop(rng.randrange(len(vector)))
        else:
            vector.append(vector[0] if vector else 1.0)
        return json.dumps(vector).encode(), "error", "wrong arity"
    if kind == "type":
        wrong = rng.choice([{"a": 1}, [[1]], "1.0" if not model.is_sequence else 1.5, True and [True]])
        shape = rng.choice((wrong, [wrong], {"instance": instance}, 7, "text", None))
        return json.dumps(shape).encode(), "error", f"wrong type {shape!r:.60}"
    if kind == "bytes":
        data, how = mutate_bytes(rng, text)
        data = data.replace(b"\n", b" ")
        return data, "any", "bytes " + how
    if kind == "binary":
        data = rng.randbytes(rng.randint(1, 200)).replace(b"\n", b"\x00")
        return data, "any", "binary"
    if kind == "blank":
        return rng.choice((b"", b" ", b"\r", b"\t \t")), "error", "blank line"
    return rng.choice(NOT_STOP), "error", "looks like STOP"


def _check_reply(raw: bytes, expect: str, model_labels: list[str] | None) -> tuple[str, str]:
    if not raw.endswith(b"\n") or not raw.isascii():
        return "lost", f"reply is not one ASCII line: {raw[:300]!r}"
    try:
        reply = json.loads(raw, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    except ValueError as exc:
        return "lost", f"reply is not strict JSON ({exc}): {raw[:300]!r}"
    status = reply.get("status") if isinstance(reply, dict) else None
    if status == "error":
        message = reply.get("error")
        if not isinstance(message, str) or not message:
            return "lost", f"error reply without a message: {raw[:300]!r}"
        if message.startswith("internal error"):
            return "traceback", message[:300]
        if expect == "ok":
            return "lost", f"a valid instance got an error: {message[:300]}"
        return "handled", ""
    if status != "ok" or not {"output", "labels", "conf", "dist"} <= set(reply):
        return "lost", f"reply is neither ok nor error: {raw[:300]!r}"
    if expect == "error":
        return "lost", f"a bad request was answered ok: {raw[:300]!r}"
    labels = reply["labels"]
    outputs = reply["output"] if isinstance(reply["output"], list) else [reply["output"]]
    if any(o not in labels for o in outputs):
        return "lost", f"output is not a label of the model: {raw[:300]!r}"
    return "handled", ""


def run_legacy_fuzz(
    models: list[Model], count: int, *, seed: int, workdir: Path, per_process: int = 1000
) -> Tally:
    """``count`` request lines over processes of each model, ending each with a STOP variant."""
    tally = Tally("legacy apply.sh fuzz")
    rng = random.Random(f"legacy-{seed}")
    started = time.monotonic()
    done = 0
    process_index = 0
    while done < count:
        model = models[process_index % len(models)]
        process_index += 1
        proc = ApplyProcess(model, workdir)
        n = min(per_process, count - done)
        for i in range(n):
            line, expect, how = make_line(rng, model)
            case = f"seed {seed} process {process_index} line {i} ({how}): {line[:200]!r}"
            proc.line = i
            if not proc.send(line + b"\n"):
                tally.add("crash", case, f"gate-apply stopped reading; exit {proc.proc.poll()}")
                break
            replies = proc.wait_replies(i + 1, timeout=120)
            if replies is None:
                tally.add("hang", case, "no reply within 120 s")
                break
            if len(replies) <= i:
                tally.add("crash", case, f"gate-apply ended; exit {proc.proc.wait(60)}")
                break
            outcome, detail = _check_reply(replies[i], expect, None)
            if outcome == "handled" and i in proc.tracebacks:
                outcome, detail = "traceback", "a traceback on stderr"
            tally.add(outcome, case, detail)
        done += n
        # End with a STOP variant followed by one more request that must never be answered.
        stop = rng.choice(STOP_VARIANTS)
        answered = len(proc.replies)
        proc.line = -1
        proc.send(stop + rng.choice((b"\n", b"\r\n")) + json.dumps(model.instances[0]).encode() + b"\n")
        code = None
        try:
            code = proc.proc.wait(120)
        except subprocess.TimeoutExpired:
            pass
        extra = proc.wait_replies(answered + 1, timeout=5)
        case = f"seed {seed} process {process_index} end: {stop!r}"
        if code is None:
            proc.close(30)
            tally.add("hang", case, "gate-apply did not exit after STOP")
        elif code != 0:
            tally.add("crash", case, f"exit {code} after STOP")
        elif extra is not None and len(extra) > answered:
            tally.add("lost", case, f"a reply after STOP: {extra[answered:]!r:.300}")
        else:
            tally.add("handled", case)
        if proc.tracebacks:
            tally.add("traceback", case, f"tracebacks on stderr at lines {proc.tracebacks[:10]}")
    tally.seconds = time.monotonic() - started
    return tally


def train_models(lfdata: Path, workdir: Path) -> list[Model]:
    """A classifier and a tagger trained by ``gate-train`` (one epoch, small slices), as GATE would."""
    from bench.reliability.corpus import slice_lfdata

    tiny = slice_lfdata(lfdata, workdir / "lfdata", lines=20)
    models = []
    for pair, is_sequence in (("class-ionosphere", False), ("seq-pos2", True)):
        meta = tiny / f"{pair}.meta.json"
        prefix = workdir / f"{pair}.model"
        subprocess.run(
            [sys.executable, "-m", "lfengine", "gate-train", str(meta), str(prefix), "--maxepochs", "1"],
            check=True,
            capture_output=True,
            timeout=900,
            env=engine_env(),
        )
        models.append(Model(prefix, meta, valid_instances(tiny / f"{pair}.data.json"), is_sequence))
    return models
