"""Data-parallel scaling: 1 process against 2 workers, side by side, and where the time goes.

Each configuration is a real `lfengine train` process on the LF sample data, the same seed and
epochs: 1 process with 1 torch thread; 1 process with 2 threads (torch's default on a 2-core
machine), its OpenMP threads waiting passively (lfengine's default, lfengine/__init__.py) or
spinning as libgomp does by default; ``--workers 2`` with 1 thread each (with CUDA also one
GPU in fp32 and in bf16).
They run in turn, twice (alternating which goes first), and the faster round counts. Rank 0
runs under bench/scale_probe.py, which times the parts of each epoch. Per configuration, medians
over epochs 2..N: wall and CPU seconds per epoch (CPU of every process of the run), training
samples per second, and rank 0's wall time split into data (collation), compute (forward,
backward, optimizer), gradient all-reduce (from launch to completion, waiting for the other
rank included), the per-batch control collectives (loss all-reduce, stop/learning-rate
broadcast) and validation with saving. Ratios against 1 process with 1 thread: speed-up,
scaling efficiency (speed-up / workers), CPU ratio; and the validation accuracy.

Then, per data set, the cost of the gradient exchange itself, measured between 2 gloo processes
on this machine: one all-reduce of every gradient as dense tensors (what DistributedDataParallel
does), against dense for the layers plus sparse all-reduces of the embedding rows one batch
touches (rows counted from real batches' gradients).

This machine is shared: read the ratios of one run, and note the load average printed with it.

    nice .venv/bin/python bench/bench_scale.py [--epochs 4] [--data class-ngram-sp1 seq-pos1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

REPO = Path(__file__).resolve().parent.parent
LFDATA = REPO.parent / "shared" / "lfdata"
OUT = REPO / "bench" / "out"
SEED = 1
PARTS = ("data", "compute", "grad_allreduce", "control", "validation")
BASE = "1 proc, 1 thread"


#: libgomp's own waiting (spin about 3 ms before sleeping), which lfengine replaces by passive.
SPIN = {"GOMP_SPINCOUNT": "300000"}


def configurations() -> list[tuple[str, int, list[str], dict[str, str]]]:
    """(label, processes, flags, environment) of each run."""
    runs = [
        (BASE, 1, ["--workers", "1", "--threads", "1", "--device", "cpu"], {}),
        ("1 proc, 2 threads", 1, ["--workers", "1", "--threads", "2", "--device", "cpu"], {}),
        ("1 proc, 2 thr, spin", 1, ["--workers", "1", "--threads", "2", "--device", "cpu"], SPIN),
        ("2 workers x 1 thr", 2, ["--workers", "2", "--threads", "1", "--device", "cpu"], {}),
    ]
    if torch.cuda.is_available():
        runs += [
            ("1 GPU fp32", 1, ["--device", "cuda", "--precision", "fp32"], {}),
            ("1 GPU bf16", 1, ["--device", "cuda", "--precision", "bf16"], {}),
        ]
    return runs


def run(meta: Path, flags: list[str], env: dict[str, str], epochs: int) -> dict:
    """One training run (rank 0 under scale_probe.py): per-epoch medians of its parts."""
    with tempfile.TemporaryDirectory() as tmp:
        probe_out = Path(tmp) / "probe.json"
        model_dir = Path(tmp) / "model"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(REPO / "bench" / "scale_probe.py"), str(probe_out), "train", str(meta)]
            + [str(model_dir), "--seed", str(SEED), "--max-epochs", str(epochs), "--es-patience", str(epochs)]
            + flags,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            capture_output=True,
            text=True,
            timeout=3600,
        )
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"training failed: {done.stderr[-2000:]}")
        metadata = json.loads((model_dir / "model.json").read_text())["metadata"]
        epochs_seen = json.loads(probe_out.read_text())["epochs"]
    history = metadata["training"]["history"]
    instances = metadata["training"]["instances"]

    def median(key: str) -> float:
        return float(np.median([e.get(key, 0.0) for e in epochs_seen]))

    per_epoch = median("wall")
    parts = {
        "data": median("data"),
        "compute": float(
            np.median([e["step"] - e.get("grad_allreduce", 0.0) - e["loss_allreduce"] for e in epochs_seen])
        ),
        "grad_allreduce": median("grad_allreduce"),
        "control": float(np.median([e["loss_allreduce"] + e["broadcast"] for e in epochs_seen])),
        "validation": median("validation"),
    }
    return {
        "s_per_epoch": per_epoch,
        "cpu_per_epoch": median("cpu"),
        "samples_per_s": instances / per_epoch,
        "parts": parts,
        "process_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "wall_s": wall,
        "accuracy": history[-1]["validation"].get("accuracy", float("nan")),
    }


# --- the gradient exchange alone: dense against sparse -------------------------------------


def gradient_shapes(name: str, batches: int = 20) -> dict:
    """The model's parameter count, its embedding tables, and the rows of each one batch touches."""
    sys.path.insert(0, str(REPO / "bench"))
    from bench_speed import lfengine_variant, prepare

    from lfengine.data.batching import batch_indices, collate

    p = prepare(name)
    model = lfengine_variant(p).network
    tables = {
        n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Embedding) and m.weight.requires_grad
    }
    touched: dict[str, list[int]] = {n: [] for n in tables}
    rng = np.random.default_rng(SEED)
    order = batch_indices(p.train.lengths(), model.config.batch_size, rng=rng, bucket=p.codec.is_sequence)
    for items in order[:batches]:
        model.zero_grad(set_to_none=True)
        model.loss(collate(p.train, items)).backward()
        for n, table in tables.items():
            if table.weight.grad is not None:
                touched[n].append(int((table.weight.grad.abs().sum(dim=1) > 0).sum()))
    embedding = {
        n: (t.num_embeddings, t.embedding_dim, int(np.median(touched[n] or [0]))) for n, t in tables.items()
    }
    total = sum(q.numel() for q in model.parameters() if q.requires_grad)
    in_tables = sum(rows * dims for rows, dims, _ in embedding.values())
    return {"dense_elements": total - in_tables, "tables": embedding, "batches_per_epoch": len(order)}


def _exchange(rank: int, world: int, port: int, shapes: dict, repeats: int, out: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(rank)
    dense_all = torch.randn(shapes["dense_elements"] + sum(r * d for r, d, _ in shapes["tables"].values()))
    dense_layers = torch.randn(shapes["dense_elements"])
    sparse = []
    for rows, dims, used in shapes["tables"].values():
        index = torch.randperm(rows)[:used].unsqueeze(0)
        values = torch.randn(used, dims)
        sparse.append(torch.sparse_coo_tensor(index, values, (rows, dims), check_invariants=True))
    timings: dict[str, list[float]] = {"dense": [], "sparse": []}
    for _ in range(repeats):
        dist.barrier()
        started = time.perf_counter()
        dist.all_reduce(dense_all)
        timings["dense"].append(time.perf_counter() - started)
        dist.barrier()
        started = time.perf_counter()
        dist.all_reduce(dense_layers)
        for tensor in sparse:
            dist.all_reduce(tensor)
        timings["sparse"].append(time.perf_counter() - started)
    if rank == 0:
        Path(out).write_text(json.dumps({k: float(np.median(v)) for k, v in timings.items()}))
    dist.destroy_process_group()


def exchange_costs(shapes: dict, repeats: int = 30) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "exchange.json")
        store = dist.TCPStore("127.0.0.1", 0, 1, True)  # only to get a free port
        port = store.port
        del store
        mp.spawn(_exchange, args=(2, port, shapes, repeats, out), nprocs=2, join=True)
        return json.loads(Path(out).read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--data", nargs="+", default=["class-ngram-sp1", "seq-pos1"])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not (LFDATA / f"{args.data[0]}.meta.json").is_file():
        print(f"LF reference data not found at {LFDATA}; nothing to measure", file=sys.stderr)
        return 0
    load_before = os.getloadavg()
    results: dict[str, dict[str, dict]] = {}
    exchange: dict[str, dict] = {}
    configs = configurations()
    for name in args.data:
        meta = LFDATA / f"{name}.meta.json"
        best: dict[str, dict] = {}
        for round_ in range(args.rounds):
            order = configs if round_ % 2 == 0 else configs[::-1]
            for label, _, flags, env in order:
                row = run(meta, flags, env, args.epochs)
                if label not in best or row["s_per_epoch"] < best[label]["s_per_epoch"]:
                    best[label] = row
        results[name] = {label: best[label] for label, *_ in configs}
        shapes = gradient_shapes(name)
        exchange[name] = {"shapes": shapes, "seconds": exchange_costs(shapes)}
    load_after = os.getloadavg()
    print(
        f"\ndata-parallel scaling, {args.epochs} epochs, {os.cpu_count()} CPUs, faster of {args.rounds} "
        f"rounds; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n"
    )
    header = (
        f"{'data':16} {'run':18} {'s/epoch':>8} {'CPU s':>6} {'samples/s':>9} {'speed-up':>8} "
        f"{'effic.':>6} {'CPU x':>6} {'val acc':>7} | rank 0 s/epoch: " + " ".join(f"{p:>10}" for p in PARTS)
    )
    print(header)
    print("-" * len(header))
    workers_of = {label: workers for label, workers, *_ in configs}
    for name, rows in results.items():
        base = rows[BASE]
        for label, row in rows.items():
            speed_up = base["s_per_epoch"] / row["s_per_epoch"]
            print(
                f"{name:16} {label:18} {row['s_per_epoch']:>8.2f} {row['cpu_per_epoch']:>6.2f} "
                f"{row['samples_per_s']:>9.0f} {speed_up:>8.2f} {speed_up / workers_of[label]:>6.2f} "
                f"{row['cpu_per_epoch'] / base['cpu_per_epoch']:>6.2f} {row['accuracy']:>7.4f} | "
                + " ".join(f"{row['parts'][p]:>10.3f}" for p in PARTS)
            )
    print("\ngradient exchange between 2 gloo processes, per batch and per epoch (median of 30):")
    for name, found in exchange.items():
        shapes, seconds = found["shapes"], found["seconds"]
        tables = ", ".join(f"{r:,}x{d} ({u:,} rows/batch)" for r, d, u in shapes["tables"].values())
        per_epoch = shapes["batches_per_epoch"]
        print(
            f"{name:16} layers {shapes['dense_elements']:,} elements; tables {tables}\n"
            f"{'':16} dense all-reduce {seconds['dense'] * 1000:.2f} ms/batch, "
            f"{seconds['dense'] * per_epoch:.2f} s/epoch; dense layers + sparse tables "
            f"{seconds['sparse'] * 1000:.2f} ms/batch, {seconds['sparse'] * per_epoch:.2f} s/epoch"
        )
    if not torch.cuda.is_available():
        print("\nno CUDA device here: the GPU rows (fp32 vs bf16) were not measured")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scale.json").write_text(
        json.dumps(
            {"epochs": args.epochs, "load": [load_before, load_after]}
            | {"results": results, "exchange": exchange},
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
