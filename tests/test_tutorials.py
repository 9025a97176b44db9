"""The tutorials under docs/tutorials run as written (with one epoch per training), so the docs
cannot rot; and every command that prints something has its real output pasted."""

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
    assert len(steps) >= 8
    for step in steps:
        if step.shell.startswith(SILENT) or " > data/" in step.shell:
            continue
        assert step.output, f"{tutorial.name}: no output pasted for `{step.shell}` (run run.py --update)"


def test_fast_mode_shortens_only_training_commands() -> None:
    step = tutorial_runner.Step(["lfengine train a.meta.json m --module X 2> log"])
    shell = tutorial_runner.fast_command(step.shell)
    assert shell == "lfengine train a.meta.json m --module X --max-epochs 1 2> log"
    assert tutorial_runner.fast_command("lfengine evaluate m d") == "lfengine evaluate m d"
