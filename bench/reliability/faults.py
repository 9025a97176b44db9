"""Faults: kill -9 during training then --resume, SIGTERM to serve during train, a read-only
model directory, and a full disk. Every case runs the real command line or the real server.

A model directory counts as "lost" when it cannot be loaded after the fault is over, or when
temporary files (``.*.tmp``) are left in it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.reliability.engine import TRACEBACK, Engine, engine_env, is_response
from bench.reliability.tally import Tally


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lfengine", *args]


def leftovers(model_dir: Path) -> list[str]:
    if not model_dir.is_dir():
        return []
    return sorted(p.name for p in model_dir.iterdir() if p.name.endswith(".tmp"))


def model_problem(model_dir: Path, *, allow_leftovers: bool = False) -> str | None:
    """Why the directory is not a usable model (None if it is), loaded by the real code."""
    from lfengine import service
    from lfengine.errors import LfEngineError

    left = leftovers(model_dir)
    if left and not allow_leftovers:
        return f"temporary files left: {left}"
    try:
        service.load_model(str(model_dir))
    except LfEngineError as exc:
        return f"unloadable: {exc.message}"
    return None


# --- kill -9 then resume ----------------------------------------------------------------------
def _train_until_killed(
    meta: Path, model_dir: Path, delay: float, max_epochs: int
) -> tuple[int | None, float]:
    """Start a training, SIGKILL it ``delay`` seconds after it begins training; (exit code, seconds
    from the start of training to the exit)."""
    proc = subprocess.Popen(
        _cli("train", str(meta), str(model_dir), *_options(max_epochs)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=engine_env(),
    )
    lines: list[str] = []
    training = threading.Event()

    def watch() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace")
            lines.append(line)
            if "training on" in line:
                training.set()
        training.set()

    threading.Thread(target=watch, daemon=True).start()
    training.wait(600)
    began = time.monotonic()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    code = proc.wait(120)
    return code, time.monotonic() - began


def _options(max_epochs: int) -> list[str]:
    """The same options for the killed run and its resumption (as GATE repeats them)."""
    return ["--max-epochs", str(max_epochs), "--threads", "1", "--batch-size", "8"]


def run_kill_resume(meta: Path, workdir: Path, count: int, *, seed: int, max_epochs: int = 4) -> Tally:
    """``count`` trainings killed at random points of their training, each then resumed."""
    tally = Tally("kill -9 then --resume")
    started = time.monotonic()
    rng = random.Random(f"kill-{seed}")
    # How long the training part takes uninterrupted, to spread the kill points over it.
    reference = workdir / "reference"
    _, span = _train_until_killed(meta, reference, 10_000, max_epochs)
    for i in range(count):
        model_dir = workdir / f"killed{i}"
        delay = rng.uniform(0, span)
        case = f"seed {seed} kill {i} at {delay:.2f} s of ~{span:.1f} s training"
        killed, _ = _train_until_killed(meta, model_dir, delay, max_epochs)
        saved = (model_dir / "model.json").exists()
        if saved and (problem := model_problem(model_dir, allow_leftovers=True)):
            tally.add("lost", case, f"right after the kill (exit {killed}): {problem}")
            continue
        resumed = subprocess.run(
            _cli("train", str(meta), str(model_dir), "--resume", *_options(max_epochs)),
            capture_output=True,
            timeout=900,
            env=engine_env(),
        )
        err = resumed.stderr.decode("utf-8", "replace")
        if TRACEBACK in err:
            tally.add("traceback", case, err[-1500:])
        elif resumed.returncode != 0:
            tally.add(
                "crash", case, f"killed (exit {killed}); resume exit {resumed.returncode}: {err[-800:]}"
            )
        elif (problem := model_problem(model_dir)) is not None:
            tally.add("lost", case, problem)
        else:
            epochs = json.loads((model_dir / "model.json").read_text())["metadata"]["training"]["epochs"]
            if epochs != max_epochs:
                tally.add("lost", case, f"the resumed training ended after {epochs} of {max_epochs} epochs")
            else:
                tally.add("handled", case)
    tally.seconds = time.monotonic() - started
    return tally


# --- SIGTERM to serve during train ------------------------------------------------------------
def run_sigterm(meta: Path, workdir: Path, count: int, *, seed: int) -> Tally:
    """SIGTERM while a train runs with requests waiting: the train is answered (cancelled, model
    kept), the waiting requests get -32004, immediate ones were answered, exit code 0."""
    tally = Tally("SIGTERM to serve during train")
    started = time.monotonic()
    rng = random.Random(f"term-{seed}")
    for i in range(count):
        model_dir = workdir / f"term{i}"
        engine = Engine("json", workdir)
        case = f"seed {seed} sigterm {i}"
        engine.send(
            engine.encode(
                {"jsonrpc": "2.0", "id": 1, "method": "init", "params": {"notifications": ["progress"]}}
            )
        )
        train = {
            "meta": str(meta),
            "model": str(model_dir),
            "options": {"max_epochs": 1000, "batch_size": 4, "threads": 1},
        }
        for message in (
            {"jsonrpc": "2.0", "id": 2, "method": "train", "params": train},
            {"jsonrpc": "2.0", "id": 3, "method": "describe", "params": {"meta": str(meta)}},
            {"jsonrpc": "2.0", "id": 4, "method": "status"},
        ):
            engine.send(engine.encode(message))
        progress = 0
        replies: dict = {}
        deadline = time.monotonic() + 600
        target = rng.randint(1, 6)
        while progress < target and time.monotonic() < deadline:
            msg = engine.next_message(deadline - time.monotonic())
            if isinstance(msg, dict) and msg.get("method") == "progress":
                progress += 1
            elif is_response(msg):
                replies[msg["id"]] = msg
            elif msg is None or not isinstance(msg, dict):
                break
        engine.proc.send_signal(signal.SIGTERM)
        try:
            code = engine.proc.wait(300)
        except subprocess.TimeoutExpired:
            engine.kill()
            tally.add("hang", case, "serve did not exit after SIGTERM")
            continue
        while (msg := engine.next_message(10)) is not None and isinstance(msg, dict):
            if is_response(msg):
                replies[msg["id"]] = msg
        outcome, detail = _judge_sigterm(code, replies, model_dir, engine)
        tally.add(outcome, case, detail)
    tally.seconds = time.monotonic() - started
    return tally


def _judge_sigterm(code: int, replies: dict, model_dir: Path, engine: Engine) -> tuple[str, str]:
    if engine.tracebacks:
        return "traceback", engine.stderr_tail()
    if code != 0:
        return "crash", f"exit {code}\n{engine.stderr_tail()}"
    if set(replies) != {1, 2, 3, 4}:
        return "lost", f"responses for ids {sorted(replies)}, owed 1-4"
    train = replies[2]
    if "result" not in train or train["result"].get("stopped") != "cancelled":
        return "lost", f"the train response: {json.dumps(train)[:400]}"
    if replies[3].get("error", {}).get("code") != -32004:
        return "lost", f"the waiting request was not refused with -32004: {json.dumps(replies[3])[:300]}"
    problem = model_problem(model_dir)
    return ("lost", problem) if problem else ("handled", "")


# --- a read-only model directory, a full disk --------------------------------------------------
@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[bool]:
    """Mount a tmpfs at ``path`` (root only); yields False where mounting is not possible."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = (
        os.geteuid() == 0
        and shutil.which("mount") is not None
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _on_scratch_file_system(category: str, mount: Path, cases: Callable[[Tally, Path], None]) -> Tally:
    """Run ``cases(tally, mount)`` on a 64 MiB tmpfs at ``mount`` and time them; the category's
    tally, marked skipped where no tmpfs can be mounted."""
    tally = Tally(category)
    started = time.monotonic()
    with tmpfs(mount, "64m") as mounted:
        if not mounted:
            tally.skipped = "a tmpfs cannot be mounted here (needs root)"
            return tally
        cases(tally, mount)
    tally.seconds = time.monotonic() - started
    return tally


def _remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


def run_read_only(meta: Path, data: Path, workdir: Path) -> Tally:
    """A model on a read-only file system applies, evaluates and describes; training into it
    (fresh or --resume) is a typed error naming the directory, and the engine keeps serving."""

    def cases(tally: Tally, mount: Path) -> None:
        model_dir = mount / "model"
        subprocess.run(
            _cli("train", str(meta), str(model_dir), "--max-epochs", "1", "--threads", "1"),
            check=True,
            capture_output=True,
            timeout=900,
            env=engine_env(),
        )
        _remount(mount, "ro")
        engine = Engine("json", workdir)
        first = json.loads(data.read_text().splitlines()[0])[0]
        cases = [
            ("apply", "apply-batch", {"model": str(model_dir), "instances": [first]}, None),
            ("evaluate", "evaluate", {"model": str(model_dir), "data": str(data)}, None),
            ("describe", "describe", {"model": str(model_dir)}, None),
            (
                "train into it",
                "train",
                {"meta": str(meta), "model": str(model_dir), "options": {"max_epochs": 1}},
                "error",
            ),
            (
                "resume into it",
                "train",
                {"meta": str(meta), "model": str(model_dir), "options": {"resume": True}},
                "error",
            ),
            (
                "train a new dir in it",
                "train",
                {"meta": str(meta), "model": str(mount / "new"), "options": {"max_epochs": 1}},
                "error",
            ),
        ]
        for i, (name, method, params, expect) in enumerate(cases):
            engine.frame = i
            reply = engine.request(
                {"jsonrpc": "2.0", "id": i, "method": method, "params": params}, timeout=600
            )
            tally.add(*_judge_plain(name, reply, expect, str(model_dir) if expect else None, engine, i))
        status = engine.request({"jsonrpc": "2.0", "id": "s", "method": "status"}, timeout=120)
        if not (is_response(status) and "result" in status):
            tally.add("crash", "status after the read-only cases", repr(status))
        engine.close(120)
        problem = model_problem(model_dir)
        tally.add(
            *(("lost", "the model after the attempts", problem) if problem else ("handled", "model intact"))
        )

    return _on_scratch_file_system("read-only model dir", workdir / "ro", cases)


def _judge_plain(name: str, reply, expect: str | None, must_name: str | None, engine: Engine, frame: int):
    if any(t[0] == frame for t in engine.tracebacks):
        return "traceback", name, engine.stderr_tail()
    if reply is None:
        return "hang", name, "no response"
    if not is_response(reply):
        return "lost", name, repr(reply)[:300]
    if "error" in reply:
        error = reply["error"]
        if error["code"] == -32603:
            return "traceback", name, json.dumps(error)[:500]
        if expect is None:
            return "lost", name, f"refused: {error['message'][:300]}"
        if must_name and must_name.split("/")[-1] not in error["message"]:
            return "lost", name, f"the error does not name the directory: {error['message'][:300]}"
        return "handled", name, ""
    if expect == "error":
        return "lost", name, f"succeeded where it cannot: {json.dumps(reply)[:300]}"
    return "handled", name, ""


def run_full_disk(
    meta: Path, workdir: Path, *, seed: int, fills: tuple[int, ...] = (0, 4096, 32768, 131072)
) -> Tally:
    """Training onto a nearly full disk: a typed error (or success) and, for a directory that
    held a model, the old model still loads; no temp files; the engine keeps serving."""

    def cases(tally: Tally, mount: Path) -> None:
        engine = Engine("json", workdir)
        old = mount / "old"
        first = engine.request(_train_request("first", meta, old), timeout=900)
        if not (is_response(first) and "result" in first):
            tally.add("crash", "first training with space left", repr(first)[:500])
            return
        weights = sorted((p.name, p.stat().st_size) for p in old.iterdir() if p.suffix == ".pt")
        for k, free in enumerate(fills):
            filler = mount / "filler"
            _fill(mount, filler, free)
            for target in (old, mount / f"new{k}"):
                engine.frame = k
                name = f"free {free} bytes, train into {'the old model' if target == old else 'a new dir'}"
                reply = engine.request(_train_request(f"{k}-{target.name}", meta, target), timeout=900)
                outcome = _judge_plain(name, reply, "any", None, engine, k)
                if outcome[0] == "handled" and target.is_dir() and (target / "model.json").exists():
                    problem = model_problem(target)
                    if problem:
                        outcome = ("lost", name, problem)
                elif outcome[0] == "handled" and leftovers(target):
                    outcome = ("lost", name, f"temporary files left: {leftovers(target)}")
                tally.add(*outcome)
            filler.unlink()
        if sorted((p.name, p.stat().st_size) for p in old.iterdir() if p.suffix == ".pt") == [] and weights:
            tally.add("lost", "the old model's weights", "gone")
        status = engine.request({"jsonrpc": "2.0", "id": "s", "method": "status"}, timeout=120)
        if not (is_response(status) and "result" in status):
            tally.add("crash", "status after the full-disk cases", repr(status))
        engine.close(120)

    return _on_scratch_file_system("full disk", workdir / "disk", cases)


def _train_request(rid: str, meta: Path, model_dir: Path) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "train",
        "params": {"meta": str(meta), "model": str(model_dir), "options": {"max_epochs": 2, "threads": 1}},
    }


def _fill(mount: Path, filler: Path, free: int) -> None:
    """Fill the file system until about ``free`` bytes are left."""
    st = os.statvfs(mount)
    size = max(0, st.f_bavail * st.f_frsize - free)
    with open(filler, "wb") as handle:
        try:
            handle.write(b"\0" * size)
        except OSError:
            pass
