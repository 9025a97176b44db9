"""Protocol fuzz: mutated frames from the recorded sessions through a few real engine processes.

Frames are sent in lockstep: the frame, then a ``status`` sentinel with its own id; every
message before the sentinel's response belongs to the frame. An oracle derived from
protocol.md (§1.4, §2.1, §3 rule 1) says how many responses each frame is owed and with which
ids: one per non-blank JSON line / msgpack message, none for a well-formed notification. A frame
whose bytes no longer form whole msgpack messages is owed at least a well-formed reply stream
(it may swallow the sentinel, as a message whose length header promises more bytes does: the
engine is then shut by end of input, which must answer and exit 0 or 3).
Trainings are followed by a ``cancel`` notification, so that a fuzzed ``max_epochs`` never
costs more than a batch.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import msgpack

from bench.reliability.corpus import prelude, session_requests, slice_lfdata
from bench.reliability.engine import Engine, Exited, Garbage, is_notification, is_response
from bench.reliability.mutate import mutate_bytes, mutate_object
from bench.reliability.tally import Tally

DOCUMENTED_CODES = {-32700, -32600, -32601, -32602, -32603, -32001, -32002, -32003, -32004}
DOCUMENTED_CODES |= {1000, 1001, 1002, 1003, 1010, 1020, 1021, 1030, 1099}
CANCEL = {"jsonrpc": "2.0", "method": "cancel"}
LOOSE = "loose"  # a frame that is not whole messages: no exact count
LIMIT = 2**20  # the engines run with --max-message-mb 1


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def owed(message: Any) -> list[Any]:
    """Responses one decoded message is owed: [] for a notification, else [expected id or ANY]."""
    if not isinstance(message, dict):
        return [None]
    if "id" not in message:
        well_formed = (
            message.get("jsonrpc") == "2.0"
            and isinstance(message.get("method"), str)
            and message["method"] != ""
            and (message.get("params") is None or isinstance(message.get("params"), (dict, list)))
        )
        return [] if well_formed else [None]
    return [message["id"] if _valid_id(message["id"]) else None]


class _Reject(Exception):
    pass


def _strict_json(line: bytes) -> Any:
    def refuse(name: str) -> Any:
        raise _Reject(name)

    return json.loads(line.decode("utf-8"), parse_constant=refuse)


def oracle_json(frame: bytes) -> list[Any]:
    ids: list[Any] = []
    for line in frame.split(b"\n"):
        if not line.strip():
            continue
        if len(line) > LIMIT:
            ids.append(None)  # -32001, id null
            continue
        try:
            ids += owed(_strict_json(line))
        except (ValueError, _Reject, RecursionError):
            ids.append(None)
    return ids


def _ext(code: int, data: bytes) -> Any:
    if code == -1:
        return msgpack.Timestamp.from_bytes(data).to_unix()
    raise _Reject(f"extension type {code}")


def oracle_msgpack(frame: bytes) -> list[Any] | str:
    if len(frame) > LIMIT:
        return LOOSE  # refused (-32001) and skipped by its own length: the sentinel may be swallowed
    try:  # first: is it exactly one whole message, whatever its content?
        msgpack.unpackb(frame, raw=True, strict_map_key=False, ext_hook=lambda code, data: None)
    except Exception:
        return LOOSE
    try:
        message = msgpack.unpackb(frame, raw=False, strict_map_key=True, ext_hook=_ext)
    except Exception:
        return [None]  # a whole message that cannot be decoded: one parse error
    return owed(message)


def _mentions_shutdown(frame: bytes, fmt: str) -> bool:
    return b"shutdown" in frame


def _method(message: Any) -> str:
    return str(message.get("method")) if isinstance(message, dict) else type(message).__name__


class ProtocolFuzz:
    def __init__(self, fmt: str, *, seed: int, lfdata: Path, workdir: Path, frames_per_process: int):
        self.fmt = fmt
        self.rng = random.Random(f"{fmt}-{seed}")
        self.seed = seed
        self.workdir = workdir
        self.tiny = slice_lfdata(lfdata, workdir / "lfdata", lines=24)
        self.tmp = workdir / "tmp"
        self.tmp.mkdir(exist_ok=True)
        # Paths relative to the engine's working directory (the scratch directory): a mutated
        # path then still points inside it, so a fuzzed train never writes elsewhere.
        self.objects, self.raw = session_requests(lfdata=Path("lfdata"), tmp=Path("tmp"))
        self.prelude = prelude(self.objects)
        self.frames_per_process = frames_per_process
        self.engine: Engine | None = None
        self.tally = Tally(f"protocol fuzz ({fmt})")
        self.sentinels = 0
        self.engine_starts = 0

    # --- frames -----------------------------------------------------------------------------
    def make_frame(self, index: int) -> tuple[bytes, list[Any] | str, str, bool]:
        """(bytes, owed ids or LOOSE, description, is a training) for frame ``index``."""
        rng = self.rng
        while True:
            base = rng.choice(self.objects)
            kind = rng.random()
            if kind < 0.55:
                obj, how = mutate_object(rng, base, json_values=self.fmt == "json")
                try:
                    data = self._encode(obj)
                except (TypeError, ValueError, OverflowError, UnicodeEncodeError):
                    continue
            else:
                source = rng.choice(self.raw) if self.fmt == "json" and rng.random() < 0.1 else None
                data = source if source is not None else self._encode(base)
                if self.fmt == "json":
                    data = data.rstrip(b"\n")
                data, how = mutate_bytes(rng, data)
                how = "bytes " + how
                if self.fmt == "json":
                    data += b"\n"
            ids = oracle_json(data) if self.fmt == "json" else oracle_msgpack(data)
            if _mentions_shutdown(data, self.fmt):
                continue
            is_train = b"train" in data
            return data, ids, f"seed {self.seed} frame {index} ({_method(base)}): {how}", is_train

    def _encode(self, obj: Any) -> bytes:
        if self.fmt == "json":
            return (json.dumps(obj, allow_nan=True) + "\n").encode("utf-8", "surrogatepass")
        return msgpack.packb(obj, use_bin_type=True)

    # --- engine -----------------------------------------------------------------------------
    def _start(self) -> Engine:
        engine = Engine(self.fmt, self.workdir, ("--max-message-mb", "1"))
        models = {r["params"]["name"]: r["params"]["model"] for r in self.prelude}
        if self.engine_starts and models:  # the models exist: load them instead of training again
            init = {"jsonrpc": "2.0", "id": "reload", "method": "init", "params": {"models": models}}
            reply = engine.request(init, timeout=600)
            if is_response(reply) and "result" in reply:
                self.engine_starts += 1
                return engine
        self.engine_starts += 1
        for request in self.prelude:
            reply = engine.request(request, timeout=600)
            if not (is_response(reply) and "result" in reply):
                raise RuntimeError(f"prelude {request} failed: {reply}\n{engine.stderr_tail()}")
        return engine

    def _stop(self, engine: Engine, case: str) -> None:
        """End a process: it must still answer status, then shut down with exit code 0."""
        engine.frame = -1
        reply = engine.request({"jsonrpc": "2.0", "id": "final-status", "method": "status"}, timeout=300)
        ok = is_response(reply) and "result" in reply
        bye = (
            engine.request({"jsonrpc": "2.0", "id": "bye", "method": "shutdown"}, timeout=300) if ok else None
        )
        code = engine.close(timeout=120)
        if not ok or not (is_response(bye) and bye.get("result") == {}) or code != 0:
            self.tally.add(
                "crash", f"end of process after {case}", f"status {reply!r} shutdown {bye!r} exit {code}"
            )

    def run(self, count: int, deadline: float) -> Tally:
        started = time.monotonic()
        in_process = 0
        for index in range(count):
            if time.monotonic() > deadline:
                break
            if self.engine is None or in_process >= self.frames_per_process:
                if self.engine is not None:
                    self._stop(self.engine, f"frame {index - 1}")
                self.engine, in_process = self._start(), 0
            in_process += 1
            data, ids, case, is_train = self.make_frame(index)
            self.engine.frame = index
            outcome, detail = self._one(self.engine, data, ids, is_train)
            tracebacks = [t for t in self.engine.tracebacks if t[0] == index]
            if outcome == "handled" and tracebacks:
                outcome, detail = "traceback", self.engine.stderr_tail()
            self.tally.add(outcome, case + f" bytes={data[:400]!r}", detail)
            if self.engine.proc.poll() is not None or outcome in ("crash", "hang"):
                self.engine.kill()
                self.engine = None
        if self.engine is not None:
            self._stop(self.engine, "the last frame")
            self.engine = None
        self.tally.seconds = time.monotonic() - started
        return self.tally

    def _one(self, engine: Engine, data: bytes, ids: list[Any] | str, is_train: bool) -> tuple[str, str]:
        self.sentinels += 1
        sentinel_id = f"sentinel-{self.sentinels}"
        tail = engine.encode(CANCEL) if is_train else b""
        sent = engine.send(
            data + tail + engine.encode({"jsonrpc": "2.0", "id": sentinel_id, "method": "status"})
        )
        if not sent:
            return "crash", f"the engine stopped reading; exit {engine.proc.poll()}\n{engine.stderr_tail()}"
        replies: list[dict] = []
        wait = 0.3 if ids == LOOSE else 600.0
        deadline = time.monotonic() + wait
        while True:
            msg = engine.next_message(max(0.0, deadline - time.monotonic()))
            if msg is None:
                if ids == LOOSE:
                    if self._flush(engine, replies):
                        return self._judge(replies, LOOSE)
                    return self._swallowed(engine, replies)
                return "hang", f"no reply to the sentinel within {wait:.0f} s\n{engine.stderr_tail()}"
            if isinstance(msg, Garbage):
                return "lost", f"stdout carried non-protocol bytes: {msg.data!r} ({msg.reason})"
            if isinstance(msg, Exited):
                code = engine.proc.wait(60)
                return "crash", f"the engine exited with {code}\n{engine.stderr_tail()}"
            if is_notification(msg):
                continue
            if not is_response(msg):
                return "lost", f"a message that is not a response: {msg!r:.300}"
            if msg["id"] == sentinel_id:
                break
            replies.append(msg)
        return self._judge(replies, ids)

    def _judge(self, replies: list[dict], ids: list[Any] | str) -> tuple[str, str]:
        for reply in replies:
            error = reply.get("error")
            if error is not None and error["code"] == -32603:
                return "traceback", f"internal error: {json.dumps(error)[:600]}"
            if error is not None and error["code"] not in DOCUMENTED_CODES:
                return "lost", f"undocumented error code: {error}"
        if ids == LOOSE:
            return "handled", ""
        if len(replies) != len(ids):
            return (
                "lost",
                f"owed {len(ids)} responses (ids {ids!r:.100}), got {len(replies)}: {replies!r:.600}",
            )
        for want, reply in zip(ids, replies):
            if want is not None and reply["id"] != want:
                return "lost", f"response id {reply['id']!r} for a request with id {want!r}"
        return "handled", ""

    def _flush(self, engine: Engine, replies: list[dict]) -> bool:
        """Complete a message that swallowed the sentinel with nil bytes, then send a sentinel
        again; True once one is answered. Each round stays under the resynchronisation window."""
        for size, wait in ((4096, 2.0), (600_000, 5.0)):
            self.sentinels += 1
            sentinel_id = f"sentinel-{self.sentinels}"
            status = engine.encode({"jsonrpc": "2.0", "id": sentinel_id, "method": "status"})
            if not engine.send(b"\xc0" * size + status):
                return False
            deadline = time.monotonic() + wait
            while (msg := engine.next_message(max(0.0, deadline - time.monotonic()))) is not None:
                if isinstance(msg, (Garbage, Exited)) or not (is_response(msg) or is_notification(msg)):
                    return False
                if is_response(msg):
                    if str(msg["id"]).startswith("sentinel-"):
                        if msg["id"] == sentinel_id:
                            return True
                        continue
                    replies.append(msg)
        return False

    def _swallowed(self, engine: Engine, replies: list[dict]) -> tuple[str, str]:
        """A frame that swallowed the sentinel: end of input must flush answers and exit 0/3."""
        code = engine.close(timeout=120)
        while not isinstance(msg := engine.next_message(30), (Exited, type(None))):
            if isinstance(msg, Garbage) or not (is_response(msg) or is_notification(msg)):
                return "lost", f"after end of input: {msg!r:.300}"
            if is_response(msg):
                replies.append(msg)
        if code is None:
            return "hang", "the engine did not exit at end of input"
        if code not in (0, 3):
            return "crash", f"exit {code} at end of input\n{engine.stderr_tail()}"
        if not replies:
            return "lost", "no response at all to a frame that swallowed the sentinel"
        return self._judge(replies, LOOSE)


def run_protocol_fuzz(
    fmt: str,
    count: int,
    *,
    seed: int,
    lfdata: Path,
    workdir: Path,
    frames_per_process: int = 2500,
    time_limit: float = 3600.0,
) -> Tally:
    fuzz = ProtocolFuzz(fmt, seed=seed, lfdata=lfdata, workdir=workdir, frames_per_process=frames_per_process)
    tally = fuzz.run(count, time.monotonic() + time_limit)
    return tally
