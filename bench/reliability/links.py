"""Symbolic links (issue 19 item 6): a link planted where lfengine writes never makes it write
to the link's target, against the real command line, train.sh/apply.sh, gate-wrapper and the
server.

Each case plants links to a victim file (the user's own, e.g. ~/.bashrc): at the temporary
names gate-wrapper and --save_config_file used, and at train.log, metrics.jsonl, model.json,
weights.pt or checkpoint.pt of the model directory a training writes. The victim must keep its
bytes; a training into a directory holding a link must be refused with a typed error (exit 1,
or 1020). A victim overwritten or appended to counts as ``lost``; ``targets written`` is
counted apart for the summary.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from bench.reliability.engine import TRACEBACK, Engine
from bench.reliability.tally import Tally

VICTIM = "# the user's own file: lfengine must never write here\n"
GATE = "import sys; from lfengine.gate import {main}; sys.exit({main}(sys.argv[1:]))"
TIMEOUT = 240
MODEL_FILES = ("train.log", "metrics.jsonl", "model.json", "weights.pt", "checkpoint.pt")


def _victim(case: Path) -> Path:
    victim = case / "victim.txt"
    victim.write_text(VICTIM, encoding="utf-8")
    return victim


def _cases(meta: Path, base: Path) -> list[tuple[str, bool, object]]:
    """(case, whether the command must be refused, a function (case dir, victim) -> argv that
    plants the links and returns the command)."""
    py = [sys.executable, "-m", "lfengine"]
    quick = ["--max-epochs", "1", "--threads", "1"]

    def wrapper(case: Path, victim: Path) -> list[str]:
        from lfengine.gate.wrapper import WRAPPER_NAME, render_wrapper_files

        target = case / "data" / WRAPPER_NAME
        target.mkdir(parents=True)
        for name in render_wrapper_files("python3", ""):
            (target / f".{name}.tmp").symlink_to(victim)
        return [*py, "gate-wrapper", str(case / "data")]

    def save_config(program: str):
        def plant(case: Path, victim: Path) -> list[str]:
            config = case / "settings.conf"
            Path(f"{config}.tmp").symlink_to(victim)
            if program == "gate_train_main":
                rest = [str(meta), str(case / "FileJsonPyTorch.model"), "--nocreate"]
            else:
                shutil.copytree(base, case / "FileJsonPyTorch.model.d")
                rest = [str(case / "FileJsonPyTorch.model")]
            return [sys.executable, "-c", GATE.format(main=program), *rest, "--save_config_file", str(config)]

        return plant

    def new_dir_with(name: str):
        def plant(case: Path, victim: Path) -> list[str]:
            (case / "model").mkdir()
            (case / "model" / name).symlink_to(victim)
            return [*py, "train", str(meta), str(case / "model"), *quick]

        return plant

    def resume_with(name: str):
        def plant(case: Path, victim: Path) -> list[str]:
            shutil.copytree(base, case / "model")
            (case / "model" / name).unlink(missing_ok=True)
            (case / "model" / name).symlink_to(victim)
            return [
                *py,
                "train",
                str(meta),
                str(case / "model"),
                "--resume",
                "--max-epochs",
                "2",
                "--threads",
                "1",
            ]

        return plant

    def gate_train_log(case: Path, victim: Path) -> list[str]:
        model = case / "FileJsonPyTorch.model.d"
        model.mkdir()
        (model / "train.log").symlink_to(victim)
        prefix = str(case / "FileJsonPyTorch.model")
        return [
            sys.executable,
            "-c",
            GATE.format(main="gate_train_main"),
            str(meta),
            prefix,
            "--maxepochs",
            "1",
        ]

    cases: list[tuple[str, bool, object]] = [
        ("gate-wrapper: links at .NAME.tmp", False, wrapper),
        ("train.sh --save_config_file: link at NAME.tmp", False, save_config("gate_train_main")),
        ("apply.sh --save_config_file: link at NAME.tmp", False, save_config("gate_apply_main")),
        ("train.sh: train.log link", True, gate_train_log),
    ]
    cases += [(f"train: {name} link in a new model dir", True, new_dir_with(name)) for name in MODEL_FILES]
    cases += [
        (f"train --resume: {name} link", True, resume_with(name)) for name in ("train.log", "metrics.jsonl")
    ]
    return cases


def run_links(workdir: Path) -> Tally:
    """Every case on a small trained model (code_routes.base_model)."""
    from bench.reliability.code_routes import base_model, run_command

    meta, base = base_model(workdir)
    tally = Tally("symlinks")
    started = time.monotonic()
    written = 0
    for i, (name, refused, plant) in enumerate(_cases(meta, base)):
        case = workdir / f"case-{i}"
        case.mkdir(parents=True)
        victim = _victim(case)
        run = run_command(plant(case, victim), case, tally, name)  # type: ignore[operator]
        if run is None:
            continue
        err = run.stderr.decode("utf-8", "replace")
        changed = victim.read_text(encoding="utf-8") != VICTIM
        written += changed
        if changed:
            tally.add("lost", name, f"the link's target was written (exit {run.returncode})")
        elif TRACEBACK in err:
            tally.add("traceback", name, err[-1500:])
        elif refused and not (run.returncode != 0 and "symbolic link" in err):
            tally.add(
                "crash", name, f"expected a typed refusal naming the link: exit {run.returncode} {err[-600:]}"
            )
        elif not refused and run.returncode != 0:
            tally.add("crash", name, f"exit {run.returncode}: {err[-600:]}")
        else:
            tally.add("handled")
    written += _protocol_case(workdir / "protocol", meta, tally)
    tally.seconds = time.monotonic() - started
    tally.category += f" ({written} targets written)"
    return tally


def _protocol_case(workdir: Path, meta: Path, tally: Tally) -> int:
    """A protocol train into a directory holding a metrics.jsonl link: 1020, serving goes on."""
    workdir.mkdir(parents=True)
    victim = _victim(workdir)
    (workdir / "model").mkdir()
    (workdir / "model" / "metrics.jsonl").symlink_to(victim)
    engine = Engine("json", workdir)
    name = "protocol train: metrics.jsonl link"
    try:
        params = {
            "meta": str(meta),
            "model": str(workdir / "model"),
            "options": {"max_epochs": 1, "threads": 1},
        }
        reply = engine.request({"jsonrpc": "2.0", "id": 1, "method": "train", "params": params}, TIMEOUT)
        status = engine.request({"jsonrpc": "2.0", "id": 2, "method": "status"}, 60)
    finally:
        engine.close(60)
        engine.kill()
    changed = victim.read_text(encoding="utf-8") != VICTIM
    code = reply.get("error", {}).get("code") if isinstance(reply, dict) else None
    if changed:
        tally.add("lost", name, "the link's target was written")
    elif engine.tracebacks:
        tally.add("traceback", name, engine.stderr_tail())
    elif not isinstance(status, dict) or "result" not in status:
        tally.add("hang", name, f"status not answered: {status!r:.300}")
    elif code != 1020:
        tally.add("crash", name, f"expected 1020, got {json.dumps(reply)[:500]}")
    else:
        tally.add("handled")
    return int(changed)
