"""The resident engine against its limits, measured side by side in one run.

(a) ``status`` round trip in lockstep: the protocol's floor (pipe, framing, envelope, dispatch).
(b) ``apply-batch`` round trip for 1, 10, 100 and 1000 instances, against the same model's bare
    forward pass in this process: ``model.predict`` on Batches collated in advance, exactly the
    passes the Predictor makes, under the same number of torch threads and the engine's
    process settings (allocator, garbage collection: lfengine.serving.server). Both run pinned to one
    CPU (--cpu), so they share its caches and frequency. The two are timed in turn, sample after
    sample, so that machine noise hits both alike; medians are reported.
(c) resident memory of the engine (VmRSS) after 1,000 and after 100,000 single-instance
    ``apply-batch`` requests, pipelined, alternating between the two models.

Models: trained by the engine itself (a few epochs) on class-window-pos1 and seq-pos1.
Run:  .venv/bin/python bench/bench_protocol.py [--formats json,msgpack] [--threads 1] [--cpu N]
      [--memory-requests 100000] [--seconds-per-case 1.0] [--min-samples 9] [--parts abc]
Targets: status p50 < 0.2 ms; apply-batch of 1000 within 1.3x of the bare forward; a single
instance adds < 1 ms to the forward; memory growth from 1k to 100k requests < 5 %.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
LFDATA = REPO.parent / "shared" / "lfdata"
OUT = REPO / "bench" / "out"
MODELS = ("class-window-pos1", "seq-pos1")
BATCH_SIZES = (1, 10, 100, 1000)
TARGET_STATUS_P50_MS = 0.2
TARGET_RATIO_1000 = 1.3
TARGET_ADDED_MS = 1.0
TARGET_GROWTH_PERCENT = 5.0


class Engine:
    """``lfengine serve`` in a child process, spoken to on raw pipe descriptors."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lfengine", "serve", "--format", fmt],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._out = self.process.stdin.fileno()
        self._in = self.process.stdout.fileno()
        self._buffer = b""
        self._unpacker = msgpack.Unpacker(raw=False)
        self._ids = itertools.count(1)

    def encode(self, method: str, params: dict | None = None) -> bytes:
        message = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or {}}
        if self.fmt == "json":
            return json.dumps(message, separators=(",", ":")).encode() + b"\n"
        return msgpack.packb(message, use_bin_type=True)

    def roundtrip(self, payload: bytes) -> float:
        """Seconds from writing one request to holding its whole response (not yet decoded, for
        JSON; msgpack has no delimiter, so its response is decoded to find its end)."""
        start = time.perf_counter()
        os.write(self._out, payload)
        self._next_raw()
        return time.perf_counter() - start

    def call(self, method: str, params: dict | None = None) -> Any:
        os.write(self._out, self.encode(method, params))
        reply = self._decode(self._next_raw())
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def _next_raw(self) -> Any:
        while True:
            if self.fmt == "json":
                end = self._buffer.find(b"\n")
                if end >= 0:
                    line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
                    return line
            else:
                for message in self._unpacker:
                    return message
            data = os.read(self._in, 1 << 20)
            if not data:
                raise EOFError("the engine closed its output")
            if self.fmt == "json":
                self._buffer += data
            else:
                self._unpacker.feed(data)

    def _decode(self, raw: Any) -> dict:
        return json.loads(raw) if self.fmt == "json" else raw

    def pipelined(self, payloads: list[bytes], window: int, checkpoints: dict[int, Any]) -> None:
        """Send every payload, at most ``window`` unanswered at a time (the engine refuses more
        than 1024 waiting requests); after ``n`` responses call ``checkpoints[n]()``."""
        sent = received = 0
        while received < len(payloads):
            writable = [self._out] if sent < len(payloads) and sent - received < window else []
            readable, writable, _ = select.select([self._in], writable, [], 60)
            if writable:
                os.write(self._out, payloads[sent])
                sent += 1
            if readable:
                data = os.read(self._in, 1 << 20)
                if not data:
                    raise EOFError("the engine closed its output")
                received += self._count_responses(data)
                for n in [n for n in checkpoints if n <= received]:
                    checkpoints.pop(n)()

    def _count_responses(self, data: bytes) -> int:
        if self.fmt == "json":
            self._buffer += data
            count = self._buffer.count(b"\n")
            if b'"error"' in self._buffer:
                raise RuntimeError(f"error response: {self._buffer[:300]!r}")
            self._buffer = self._buffer[self._buffer.rfind(b"\n") + 1 :]
            return count
        self._unpacker.feed(data)
        messages = list(self._unpacker)
        if any("error" in m for m in messages):
            raise RuntimeError(f"error response: {messages}")
        return len(messages)

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kib) / 1024

    def close(self) -> int:
        self.process.stdin.close()
        return self.process.wait(timeout=60)


def lf_instances(name: str, count: int) -> list:
    """``count`` unlabelled instances of an LF data file, cycling through its lines."""
    with open(LFDATA / f"{name}.data.json", encoding="utf-8") as lines:
        records = [json.loads(line)[0] for line in lines]
    return list(itertools.islice(itertools.cycle(records), count))


def train_models(workdir: Path, threads: int) -> dict[str, str]:
    engine = Engine("json")
    engine.call("init", {"threads": threads})
    dirs = {}
    for name in MODELS:
        dirs[name] = str(workdir / name)
        result = engine.call(
            "train",
            {"meta": str(LFDATA / f"{name}.meta.json"), "model": dirs[name], "options": {"max_epochs": 2}},
        )
        print(f"  trained {name}: {result['epochs']} epochs, {result['best']}", flush=True)
    engine.close()
    return dirs


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def bench_status(fmt: str, requests: int) -> dict[str, float]:
    engine = Engine(fmt)
    engine.call("init", {})
    payloads = [engine.encode("status") for _ in range(requests + 200)]
    times = [engine.roundtrip(p) * 1000 for p in payloads][200:]
    engine.close()
    return {"p50": statistics.median(times), "p99": percentile(times, 0.99), "requests": requests}


class BareForward:
    """The model's forward pass on Batches collated beforehand: what apply-batch approaches."""

    def __init__(self, model_dir: str) -> None:
        from lfengine import service

        self.model = service.load_model(model_dir)

    def prepare(self, instances: list) -> Any:
        from lfengine.data.batching import collate
        from lfengine.data.reader import encode_instances

        data = encode_instances(self.model.codec, instances)
        return [collate(data, items) for items in self.model.predictor.passes(data)]

    def run(self, batches: Any) -> float:
        import torch

        network = self.model.predictor.model
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in batches:
                network.predict(batch)
        return time.perf_counter() - start


def bench_apply(
    fmt: str, dirs: dict[str, str], bare: dict[str, BareForward], args: argparse.Namespace
) -> list:
    engine = Engine(fmt)
    engine.call("init", {"threads": args.threads, "models": dirs})
    rows = []
    for name in MODELS:
        for size in BATCH_SIZES:
            instances = lf_instances(name, size)
            batches = bare[name].prepare(instances)
            params = {"model": name, "instances": instances}
            engine_ms, bare_ms = [], []
            deadline = time.monotonic() + args.seconds_per_case
            while len(engine_ms) < 2 + args.min_samples or (
                time.monotonic() < deadline and len(engine_ms) < 500
            ):
                engine_ms.append(engine.roundtrip(engine.encode("apply-batch", params)) * 1000)
                bare_ms.append(bare[name].run(batches) * 1000)
            engine_ms, bare_ms = engine_ms[2:], bare_ms[2:]  # the first two warm caches up
            e, b = statistics.median(engine_ms), statistics.median(bare_ms)
            rows.append(
                {
                    "format": fmt,
                    "model": name,
                    "batch": size,
                    "engine_ms": e,
                    "forward_ms": b,
                    "ratio": e / b,
                    "added_ms": e - b,
                    "samples": len(engine_ms),
                }
            )
            print(f"  {fmt:7} {name:18} {size:5}: engine {e:9.3f} ms  forward {b:9.3f} ms", flush=True)
    engine.close()
    return rows


def bench_memory(dirs: dict[str, str], requests: int, threads: int) -> dict[str, float]:
    engine = Engine("json")
    engine.call("init", {"threads": threads, "models": dirs})
    pools = {name: lf_instances(name, 1000) for name in MODELS}
    payloads = [
        engine.encode(
            "apply-batch", {"model": MODELS[i % 2], "instances": [pools[MODELS[i % 2]][i // 2 % 1000]]}
        )
        for i in range(requests)
    ]
    rss: dict[str, Any] = {"start": engine.rss_mib(), "curve": {}}
    marks = sorted({1000, requests // 10, requests // 5, requests // 2, requests})
    checkpoints = {n: (lambda n=n: rss["curve"].update({n: engine.rss_mib()})) for n in marks if n >= 1000}
    started = time.perf_counter()
    engine.pipelined(payloads, window=64, checkpoints=checkpoints)
    rss["seconds"] = time.perf_counter() - started
    engine.close()
    curve = rss["curve"]
    rss["growth_percent"] = (curve[requests] - curve[1000]) / curve[1000] * 100
    rss["growth_after_fifth_percent"] = (curve[requests] - curve[marks[-3]]) / curve[marks[-3]] * 100
    rss["requests"] = requests
    return rss


def report(status: dict, rows: list, memory: dict | None, args: argparse.Namespace) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    pinned = f"pinned to CPU {args.cpu}" if args.cpu >= 0 else "not pinned"
    print(f"\nlfengine protocol benchmark: torch threads {args.threads}, {pinned}, medians\n")
    if status:
        print("(a) status round trip, lockstep")
    for fmt, s in status.items():
        print(
            f"    {fmt:8} p50 {s['p50']:.3f} ms   p99 {s['p99']:.3f} ms   ({s['requests']} requests)   "
            f"target p50 < {TARGET_STATUS_P50_MS} ms: {verdict(s['p50'] < TARGET_STATUS_P50_MS)}"
        )
    if rows:
        print("\n(b) apply-batch round trip vs the bare forward pass (model.predict on prebuilt batches)")
        print(
            f"    {'format':8} {'model':18} {'batch':>5} {'engine ms':>10} {'forward ms':>11} {'ratio':>6} "
            f"{'added ms':>9}"
        )
    for r in rows:
        times = f"{r['engine_ms']:10.3f} {r['forward_ms']:11.3f} {r['ratio']:6.2f} {r['added_ms']:9.3f}"
        print(f"    {r['format']:8} {r['model']:18} {r['batch']:5} {times}")
    for r in rows:
        if r["batch"] == 1000:
            print(
                f"    {r['format']:8} {r['model']:18} batch 1000 within {TARGET_RATIO_1000}x: "
                f"{verdict(r['ratio'] <= TARGET_RATIO_1000)} ({r['ratio']:.2f}x)"
            )
        if r["batch"] == 1:
            print(
                f"    {r['format']:8} {r['model']:18} one instance adds < {TARGET_ADDED_MS} ms: "
                f"{verdict(r['added_ms'] < TARGET_ADDED_MS)} ({r['added_ms']:.3f} ms)"
            )
    if memory:
        n = memory["requests"]
        print(
            f"\n(c) engine resident memory over {n:,} single-instance apply-batch requests, alternating the"
        )
        print(
            f"    two models (json, pipelined, {memory['seconds']:.0f} s): at start {memory['start']:.1f} MiB"
        )
        print("    " + "   ".join(f"after {k:,}: {v:.1f} MiB" for k, v in memory["curve"].items()))
        met = verdict(memory["growth_percent"] < TARGET_GROWTH_PERCENT)
        growth = memory["growth_percent"]
        print(f"    growth 1,000 -> {n:,}: {growth:+.2f} %   target < {TARGET_GROWTH_PERCENT} %: {met}")
        print(f"    growth {n // 5:,} -> {n:,}: {memory['growth_after_fifth_percent']:+.2f} %")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default="json,msgpack")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--status-requests", type=int, default=2000)
    parser.add_argument("--seconds-per-case", type=float, default=1.0)
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--min-samples", type=int, default=9, help="per case of (b), after 2 warm-up rounds")
    parser.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="the CPU to pin this process and the engines to (default: the last one allowed; -1: no pinning)",
    )
    parser.add_argument("--parts", default="abc", help="which of (a), (b), (c) to run")
    args = parser.parse_args()
    if not (LFDATA / "seq-pos1.meta.json").is_file():
        print(f"the LF reference data is not at {LFDATA}", file=sys.stderr)
        return 2
    import torch

    from lfengine.runtime.allocator import reuse_freed_memory
    from lfengine.runtime.process import relax_garbage_collection

    torch.set_num_threads(args.threads)
    reuse_freed_memory()  # the engine's process settings
    relax_garbage_collection()
    if args.cpu is None:
        args.cpu = max(os.sched_getaffinity(0))
    if args.cpu >= 0:  # the engines inherit it: both sides of every comparison run on one core
        os.sched_setaffinity(0, {args.cpu})
    formats = args.formats.split(",")
    status, rows, memory = {}, [], None
    with tempfile.TemporaryDirectory(prefix="bench-protocol-") as workdir:
        print("training the models", flush=True)
        dirs = train_models(Path(workdir), args.threads)
        if "a" in args.parts:
            print("(a) status", flush=True)
            status = {fmt: bench_status(fmt, args.status_requests) for fmt in formats}
        if "b" in args.parts:
            print("(b) apply-batch", flush=True)
            bare = {name: BareForward(path) for name, path in dirs.items()}
            rows = [row for fmt in formats for row in bench_apply(fmt, dirs, bare, args)]
        if "c" in args.parts:
            print("(c) memory", flush=True)
            memory = bench_memory(dirs, args.memory_requests, args.threads)
    report(status, rows, memory, args)
    OUT.mkdir(parents=True, exist_ok=True)
    results = {"threads": args.threads, "status": status, "apply": rows, "memory": memory}
    (OUT / "bench_protocol.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
