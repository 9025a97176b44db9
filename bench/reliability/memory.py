"""Memory per request (issue 19 items 12 and 15): the engine's peak resident size for requests
that are cheap to send and were expensive to hold, against a real ``lfengine serve``.

Each case starts a fresh engine, reads its peak RSS (VmHWM) once it is ready, sends the
request(s), and reads the peak again once the reply has come: the growth, and the growth per MB
of request, go in the table. A case is handled when the engine answered (a result or a typed
error), is still serving, and grew by no more than the case's bound.

    nice .venv/bin/python bench/bench_reliability.py --only memory
    nice .venv/bin/python -m bench.reliability.memory [--sentences 1000]   # the table alone
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import msgpack

from bench.reliability.engine import Engine, is_response
from bench.reliability.tally import Tally
from lfengine.data.synthetic import write_classification_corpus

MIB = 2**20


@dataclass
class Measure:
    case: str
    request_mb: float
    baseline_mb: float
    peak_mb: float
    seconds: float
    reply: str

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.baseline_mb

    @property
    def per_request_mb(self) -> float:
        return self.growth_mb / self.request_mb if self.request_mb else 0.0


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _reply_kind(reply: object) -> str:
    if not is_response(reply):
        return f"no reply ({type(reply).__name__})"
    if "error" in reply:
        return f"error {reply['error']['code']} {reply['error']['data'].get('type', '')}"
    return "result"


def _ready(engine: Engine, model: str | None, cwd: Path) -> float:
    """Load the model (or, without one, describe a tiny meta file: the engine imports torch only
    when a request needs it, and that import is not the request's cost), then the peak RSS."""
    if model is not None:
        params: dict = {"model": model}
    else:
        params = {"meta": str(write_classification_corpus(cwd / "warm-up", 20, seed=1))}
    engine.request({"jsonrpc": "2.0", "id": "load", "method": "describe", "params": params}, 120)
    engine.request({"jsonrpc": "2.0", "id": "ready", "method": "status"}, 60)
    return peak_rss_mb(engine.proc.pid)


def measure(
    case: str,
    fmt: str,
    cwd: Path,
    frames: list[bytes],
    *,
    model: str | None = None,
    warm: bytes | None = None,
) -> Measure:
    """Send ``frames`` (encoded requests, the last one's reply awaited) to a fresh engine."""
    engine = Engine(fmt, cwd)
    try:
        baseline = _ready(engine, model, cwd)
        if warm is not None:  # the same request once, small: kernels and caches, not the case
            engine.send(warm)
            engine.next_message(300)
            baseline = peak_rss_mb(engine.proc.pid)
        started = time.monotonic()
        replies = []
        for frame in frames:
            engine.send(frame)
        while len(replies) < len(frames):
            message = engine.next_message(600)
            if message is None or not is_response(message):
                replies.append(message)
                break
            replies.append(message)
        seconds = time.monotonic() - started
        peak = peak_rss_mb(engine.proc.pid)
        alive = engine.request({"jsonrpc": "2.0", "id": "after", "method": "status"}, 60)
        kinds = sorted({_reply_kind(r) for r in replies})
        if not is_response(alive):
            kinds.append("then no status reply")
        return Measure(case, sum(map(len, frames)) / MIB, baseline, peak, seconds, ", ".join(kinds))
    finally:
        engine.kill()


def _encode(fmt: str, message: dict) -> bytes:
    return (json.dumps(message) + "\n").encode() if fmt == "json" else msgpack.packb(message)


def _request(method: str, params: dict, request_id: object = 1) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def sentences(lfdata: Path, count: int) -> list:
    """``count`` unlabeled seq-pos1 sentences (the file's, repeated as needed)."""
    lines = (lfdata / "seq-pos1.data.json").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line)[0] for line in lines if line.strip()]
    return [records[i % len(records)] for i in range(count)]


def seq_model(lfdata: Path, workdir: Path) -> Path:
    """A seq-pos1 model with the default network, trained for one epoch."""
    from lfengine import service
    from lfengine.options import TrainOptions

    model = workdir / "seq-pos1-model"
    if not (model / "model.json").exists():
        service.train(str(lfdata / "seq-pos1.meta.json"), str(model), TrainOptions(max_epochs=1))
    return model


def case_apply_batch(lfdata: Path, workdir: Path, count: int, fmt: str = "json") -> Measure:
    """Item 15: one apply-batch of ``count`` seq-pos1 sentences."""
    model = str(seq_model(lfdata, workdir))
    frame = _encode(fmt, _request("apply-batch", {"model": model, "instances": sentences(lfdata, count)}))
    warm = _encode(fmt, _request("apply-batch", {"model": model, "instances": sentences(lfdata, 1)}, "w"))
    return measure(
        f"apply-batch seq-pos1, {count} sentences ({fmt})", fmt, workdir, [frame], model=model, warm=warm
    )


def case_empty_arrays(workdir: Path, megabytes: int = 40) -> Measure:
    """Item 12: a msgpack message of empty arrays (one byte each on the wire)."""
    n = megabytes * MIB
    padding = b"\xdd" + n.to_bytes(4, "big") + b"\x90" * n
    head = msgpack.packb({"jsonrpc": "2.0", "id": 1, "method": "status"})  # a 3-entry map
    frame = bytes([0x84]) + head[1:] + msgpack.packb("params") + bytes([0x81]) + msgpack.packb("x") + padding
    return measure(f"msgpack, {megabytes} MB of empty arrays", "msgpack", workdir, [frame])


def case_queued_apply_batches(lfdata: Path, workdir: Path, count: int = 100) -> Measure:
    """Item 12: ``count`` apply-batches of about 1 MB queued behind a training."""
    model = str(seq_model(lfdata, workdir))
    batch = sentences(lfdata, 600)  # about 1 MB of JSON
    train = _request(  # a small training that runs until cancelled: the requests wait behind it
        "train",
        {
            "meta": str(lfdata / "class-ionosphere.meta.json"),
            "model": str(workdir / "busy"),
            "options": {"max_epochs": 1000, "es_patience": 1000},
        },
        "train",
    )
    frames = [(json.dumps(train) + "\n").encode()]
    frames += [
        (json.dumps(_request("apply-batch", {"model": model, "instances": batch}, i)) + "\n").encode()
        for i in range(count)
    ]
    frames.append(b'{"jsonrpc":"2.0","id":"cancel","method":"cancel"}\n')
    return measure(f"{count} queued apply-batches of 1 MB behind a training", "json", workdir, frames)


def case_large_vocabulary(workdir: Path, words: int = 1_000_000) -> Measure:
    """Item 12: describe of a meta file whose one nominal attribute has ``words`` values."""
    from lfengine.data.synthetic import LfAttribute, write_lf

    meta = write_lf(
        workdir, "vocab", [LfAttribute("A", "w")], [[["a"], "x"], [["b"], "y"]], is_sequence=False
    )
    document = json.loads(meta.read_text(encoding="utf-8"))
    stats = next(iter(document["featureStats"].values()))
    stats["stringCounts"] = {f"w{i}": 1 for i in range(words)}
    stats["n"] = words
    meta.write_text(json.dumps(document), encoding="utf-8")
    frame = (json.dumps(_request("describe", {"meta": str(meta)})) + "\n").encode()
    measured = measure(f"describe, {words} vocabulary entries", "json", workdir, [frame])
    measured.request_mb = meta.stat().st_size / MIB  # the meta file is what the request costs
    return measured


#: (words in the case's name, the growth per MB of request beyond which the case counts as
#: lost). Measured on 0f87b50, before the fixes of issue 19: 78.9, 12.2, 218.9 and 184.1.
BOUNDS = {"msgpack": 20.0, "queued": 3.0, "describe": 100.0, "apply-batch": 100.0}
SMALL_GROWTH_MB = 16.0  # a growth this small passes whatever the request's size


def run_memory(lfdata: Path, workdir: Path, sentences_per_batch: int = 1000) -> Tally:
    tally = Tally("memory per request")
    started = time.monotonic()
    measures = [
        case_empty_arrays(workdir),
        case_queued_apply_batches(lfdata, workdir),
        case_large_vocabulary(workdir),
        case_apply_batch(lfdata, workdir, 1),
        case_apply_batch(lfdata, workdir, sentences_per_batch),
    ]
    for m in measures:
        bound = next(v for k, v in BOUNDS.items() if m.case.startswith(k) or k in m.case)
        ok = m.reply.startswith(("result", "error")) and "no " not in m.reply
        ok = ok and (m.per_request_mb <= bound or m.growth_mb <= SMALL_GROWTH_MB)
        tally.add("handled" if ok else "lost", m.case, f"{m.per_request_mb:.1f} MB per MB; {m.reply}")
    tally.seconds = time.monotonic() - started
    print(memory_table(measures), file=sys.stderr, flush=True)
    return tally


def memory_table(measures: list[Measure]) -> str:
    rows = [
        "| case | request MB | RSS ready MB | peak RSS MB | growth MB | growth per request MB | s | reply |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in measures:
        rows.append(
            f"| {m.case} | {m.request_mb:.2f} | {m.baseline_mb:.0f} | {m.peak_mb:.0f} | {m.growth_mb:.0f} | "
            f"{m.per_request_mb:.1f} | {m.seconds:.1f} | {m.reply} |"
        )
    return "\n".join(rows)


def main() -> int:
    import tempfile

    from bench.reliability.corpus import LFDATA

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--fmt", default="json")
    parser.add_argument("--workdir", default=None, help="keeps the trained model between runs")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="lfengine-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    measures = [case_apply_batch(LFDATA, workdir, n, args.fmt) for n in args.sentences]
    print(memory_table(measures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
