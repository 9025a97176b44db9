"""Model saves under faults (issue 19 items 4, 5, 13), against the real command line.

- crash between renames: a training is SIGKILLed just before its k-th file-system step (an
  fsync, a rename or a deletion: every write step of every save), for every k until the
  training finishes unkilled, into a new directory and into one holding an earlier model. The
  directory must load right after the kill (when it holds a model.json) and resuming must
  finish the training. "lost" counts unloadable directories, "crash" failed resumes.
- concurrent trainers: two trainings started together into one directory: one finishes, the
  other is refused with one line naming the directory (exit 1), and the model loads.
- loads during training: load the model in a loop while a training saves it every epoch; each
  load is a case, and one that fails is "lost".

The kill is injected: this module's ``__main__`` runs the CLI with os.fsync, os.replace and
os.unlink counted, and SIGKILLs itself at the chosen one.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.reliability.engine import TRACEBACK, engine_env
from bench.reliability.faults import model_problem
from bench.reliability.tally import Tally

_OPTIONS = ("--threads", "1", "--batch-size", "8")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lfengine", *args]


def _killed_cli(step: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "bench.reliability.save_faults", str(step), *args]


# --- crash between renames --------------------------------------------------------------------
def run_crash_between_renames(meta: Path, workdir: Path, *, limit: int = 200) -> Tally:
    """A kill before every write step of a training's saves, then a resume (see the module doc).

    The killed trainings are CLI processes; the resumes run in this process (service.train with
    ``resume``, what the CLI calls), which spares a torch import per case on a loaded machine."""
    tally = Tally("crash between renames (kill at every save step)")
    started = time.monotonic()
    earlier = workdir / "earlier"  # a model of another run, to retrain over
    subprocess.run(
        _cli("train", str(meta), str(earlier), "--max-epochs", "1", "--seed", "7", *_OPTIONS),
        check=True,
        capture_output=True,
        env=engine_env(),
    )
    for scenario, max_epochs in (("new directory", 2), ("over an earlier model", 1)):
        options = ("--max-epochs", str(max_epochs), *_OPTIONS)
        for step in range(limit):
            model_dir = workdir / f"{scenario.split()[-1]}{step}"
            if scenario != "new directory":
                shutil.copytree(earlier, model_dir)
            case = f"{scenario}: kill before write step {step}"
            run = subprocess.run(
                _killed_cli(step, "train", str(meta), str(model_dir), *options),
                capture_output=True,
                timeout=900,
                env=engine_env(),
            )
            if run.returncode != -signal.SIGKILL:
                break  # the training finished before this step: every step has been tried
            if (model_dir / "model.json").exists() and (
                problem := model_problem(model_dir, allow_leftovers=True)
            ):
                tally.add("lost", case, f"right after the kill: {problem}")
                continue
            tally.add(*_resume(meta, model_dir, max_epochs, case))
    tally.seconds = time.monotonic() - started
    return tally


def _resume(meta: Path, model_dir: Path, max_epochs: int, case: str) -> tuple:
    from lfengine import service
    from lfengine.errors import LfEngineError
    from lfengine.options import TrainOptions

    options = TrainOptions(max_epochs=max_epochs, threads=1, batch_size=8, device="cpu", resume=True)
    try:
        result = service.train(str(meta), str(model_dir), options)
    except LfEngineError as exc:
        return "crash", case, f"resume failed: {exc.message}"
    except Exception as exc:  # noqa: BLE001 - a bug, reported as such
        return "traceback", case, f"resume raised {type(exc).__name__}: {exc}"
    if (problem := model_problem(model_dir)) is not None:
        return "lost", case, f"after resume: {problem}"
    if result["epochs"] != max_epochs:
        return "lost", case, f"the resumed training ended after {result['epochs']} of {max_epochs} epochs"
    return "handled", case, ""


# --- concurrent trainers ----------------------------------------------------------------------
def run_concurrent_trainers(meta: Path, workdir: Path, count: int, *, seed: int) -> Tally:
    """``count`` pairs of trainings started together into one directory (see the module doc)."""
    tally = Tally("concurrent trainers into one directory")
    started = time.monotonic()
    rng = random.Random(f"concurrent-{seed}")
    for i in range(count):
        model_dir = workdir / f"both{i}"
        if i % 2:  # every other pair trains over an existing model, the second one resuming it
            subprocess.run(
                _cli("train", str(meta), str(model_dir), "--max-epochs", "1", *_OPTIONS),
                check=True,
                capture_output=True,
                env=engine_env(),
            )
        delay = rng.uniform(0, 0.5)
        case = f"seed {seed} pair {i}, second started {delay:.2f} s later"
        # long enough that the one refused reaches the lock while the other still trains
        args = ("--max-epochs", "40", "--es-patience", "40", *_OPTIONS)
        first = subprocess.Popen(
            _cli("train", str(meta), str(model_dir), *args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=engine_env(),
        )
        time.sleep(delay)
        second_args = (*args, "--resume") if i % 2 else args
        second = subprocess.Popen(
            _cli("train", str(meta), str(model_dir), *second_args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=engine_env(),
        )
        errs = [p.communicate(timeout=900)[1].decode("utf-8", "replace") for p in (first, second)]
        codes = sorted((first.returncode, second.returncode))
        refused = [e for e in errs if "is in use: another training" in e]
        if any(TRACEBACK in e for e in errs):
            tally.add("traceback", case, "\n".join(errs)[-1500:])
        elif codes != [0, 1] or len(refused) != 1 or len(refused[0].strip().splitlines()) != 1:
            tally.add("crash", case, f"exit codes {codes}; stderr: {[e[-300:] for e in errs]}")
        elif (problem := model_problem(model_dir)) is not None:
            tally.add("lost", case, problem)
        else:
            tally.add("handled", case)
    tally.seconds = time.monotonic() - started
    return tally


# --- loads during training --------------------------------------------------------------------
def run_loads_during_training(meta: Path, workdir: Path, *, epochs: int = 30) -> Tally:
    """Load the model in a loop while a training saves it after every epoch."""
    from lfengine.errors import LfEngineError
    from lfengine.storage import store

    tally = Tally("loads while a training saves")
    started = time.monotonic()
    model_dir = workdir / "busy"
    args = ("--max-epochs", str(epochs), "--valsize", "0", *_OPTIONS)
    training = subprocess.Popen(
        _cli("train", str(meta), str(model_dir), *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=engine_env(),
    )
    while training.poll() is None:
        if not (model_dir / "model.json").exists():
            time.sleep(0.01)
            continue
        try:
            store.load_model_dir(model_dir)
            tally.add("handled")
        except LfEngineError as exc:
            tally.add("lost", f"load {tally.tried}", exc.message)
    err = training.communicate()[1].decode("utf-8", "replace")
    if training.returncode != 0:
        tally.add("crash", "the training", err[-800:])
    tally.seconds = time.monotonic() - started
    return tally


def run_all(meta: Path, workdir: Path, *, seed: int, pairs: int = 4) -> list[Tally]:
    """The three categories (bench_reliability.py ``--only saves``)."""
    parts = {name: workdir / name for name in ("renames", "concurrent", "loads")}
    for path in parts.values():
        path.mkdir(parents=True, exist_ok=True)
    return [
        run_crash_between_renames(meta, parts["renames"]),
        run_concurrent_trainers(meta, parts["concurrent"], pairs, seed=seed),
        run_loads_during_training(meta, parts["loads"]),
    ]


def _main(argv: list[str]) -> None:
    """``python -m bench.reliability.save_faults STEP CLI-ARGS...``: the CLI, SIGKILLed just
    before its STEP-th fsync, rename or deletion."""
    step, done = int(argv[0]), [0]

    def counted(call):
        def wrapped(*args, **kwargs):
            if done[0] == step:
                os.kill(os.getpid(), signal.SIGKILL)
            done[0] += 1
            return call(*args, **kwargs)

        return wrapped

    os.fsync, os.replace, os.unlink = counted(os.fsync), counted(os.replace), counted(os.unlink)
    from lfengine.cli import main

    sys.exit(main(argv[1:]))


if __name__ == "__main__":
    _main(sys.argv[1:])
