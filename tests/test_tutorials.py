"""The tutorials under docs/tutorials (and docs/training.md's example) run as written, with one
epoch per training, and print what the pages show: docs/tutorials/run.py fails on a page whose
pasted output has drifted from the program's (timings masked; after a shortened training, the
shape). Every command that prints something has its real output pasted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNNER = REPO / "docs" / "tutorials" / "run.py"
sys.path.insert(0, str(RUNNER.parent))

import run as tutorial_runner  # noqa: E402  (docs/tutorials/run.py)

SILENT = ("mkdir ", "cp ")  # commands that print nothing


@pytest.mark.parametrize("tutorial", tutorial_runner.TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_commands_run(tutorial: Path, lfdata: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(RUNNER), "--fast", "--workdir", str(tmp_path), str(tutorial)],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "skipped" not in run.stdout


@pytest.mark.parametrize("tutorial", tutorial_runner.TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_outputs_are_pasted(tutorial: Path) -> None:
    blocks = tutorial_runner.parse(tutorial.read_text(encoding="utf-8").split("\n"))
    steps = [step for block in blocks for step in block.steps]
    assert len(steps) >= (8 if tutorial.parent.name == "tutorials" else 1)
    for step in steps:
        if step.shell.startswith(SILENT) or " > data/" in step.shell:
            continue
        assert step.output, f"{tutorial.name}: no output pasted for `{step.shell}` (run run.py --update)"


def test_fast_mode_shortens_only_training_commands() -> None:
    step = tutorial_runner.Step(["lfengine train a.meta.json m --module X 2> log"])
    shell = tutorial_runner.fast_command(step.shell)
    assert shell == "lfengine train a.meta.json m --module X --max-epochs 1 2> log"
    assert tutorial_runner.fast_command("lfengine evaluate m d") == "lfengine evaluate m d"


def test_a_drifted_page_is_reported_and_timings_are_not() -> None:
    step = tutorial_runner.Step(["lfengine describe x.meta.json"])
    page = ["labels (2, index order): a, b", "", "settings this network uses:", "  seed 1"]
    assert tutorial_runner.drift(Path("p.md"), step, page, list(page), {}, loose=False) is None
    old = ["labels (2, index order): a, b", "", "hyperparameters:", "  seed 1"]
    problem = tutorial_runner.drift(Path("p.md"), step, old, page, {}, loose=False)
    assert problem and "-hyperparameters:" in problem and "+settings this network uses:" in problem
    log = ["20:18:04 INFO epoch 3: train loss 0.5 | best so far after 29.5 s, 11.3 CPU s, saved"]
    later = ["21:01:55 INFO epoch 3: train loss 0.5 | best so far after 3.0 s, 1.1 CPU s, saved"]
    assert tutorial_runner.drift(Path("p.md"), step, log, later, {}, loose=False) is None


def test_after_a_shortened_training_only_the_shape_must_match() -> None:
    train = tutorial_runner.Step(["lfengine train d.meta.json m"])
    page = [
        "...",
        "22:56:03 INFO early stopping: no improvement for 9 validations; best epoch 25",
        "training stopped: early stopping (no improvement for es_patience validations) after 34 epochs, 3:24",
        "  best epoch  25: accuracy 0.9371  macro_f1 0.5849",
        "  model       m",
    ]
    fast = [
        "training stopped: reached max_epochs after 1 epoch, 0:05",
        "  best epoch  1: accuracy 0.8000  macro_f1 0.1000",
        "  model       m",
    ]
    assert tutorial_runner.drift(Path("p.md"), train, page, fast, {}, loose=True) is None
    renamed = [*fast[:2], "  model dir   m"]
    assert tutorial_runner.drift(Path("p.md"), train, page, renamed, {}, loose=True)
    serve = tutorial_runner.Step(["lfengine serve"])
    shown = ['{"result":{"protocol":"1.1","predictions":[{"label":["O","PER|B"],"confidence":[0.9,0.5]}]}}']
    now = ['{"result":{"protocol":"1.1","predictions":[{"label":["O","O"],"confidence":[0.6,0.7]}]}}']
    assert tutorial_runner.drift(Path("p.md"), serve, shown, now, {}, loose=True) is None
    older = [shown[0].replace('"1.1"', '"1.0"')]
    assert tutorial_runner.drift(Path("p.md"), serve, older, now, {}, loose=True)  # the version is no number
    fewer = ['{"result":{"protocol":"1.1","predictions":[{"label":["O"],"confidence":[0.6]}]}}']
    assert tutorial_runner.drift(Path("p.md"), serve, shown, fewer, {}, loose=True)
