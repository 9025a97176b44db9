"""Run the commands of the tutorials and (with --update) paste their real output into them.

    python docs/tutorials/run.py [--update] [--fast] [--workdir DIR] [TUTORIAL.md ...]

A tutorial's commands live in fenced ``console`` blocks: lines starting with ``$ `` are commands
(a line ending in a backslash continues on the next one), the other lines are the output of the
command above them. Options after the word ``console`` shape what is pasted: ``tail=N`` keeps the
last N lines, ``head=N`` the first N (the cut is marked with ``...``). Every command runs with
bash (pipefail) in one working directory per tutorial, in order, with ``$LFDATA`` set to the
shared LF files, this checkout's ``lfengine`` first on PATH and one torch thread
(``OMP_NUM_THREADS=1``, unless set). Paths of the working directory
and of the LF files are written back as ``.`` and ``$LFDATA``.

Without --update the commands run, must all succeed, and their output must match what the page
shows (a diff is printed where it does not): timings and clock times are masked on both sides,
and the batch lines logged every few seconds are left out. ``--fast`` adds ``--max-epochs 1`` to
every ``lfengine train`` (what tests/test_tutorials.py runs in CI); then the outputs of that
training and of every command after it can only match in shape: numbers are masked (and the
spaces that align them), JSON lines compare by keys, list lengths and the strings outside lists,
``warning:`` lines (a model of one epoch earns others) are left out, and a training compares
from its end block on. A block with ``excerpt``
shows only some lines of the output (``...`` for the rest): they must appear, in order.

After defaults change, regenerate every page with one command (several minutes: full trainings):

    .venv/bin/python docs/tutorials/run.py --update
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LFDATA = REPO.parent / "shared" / "lfdata"
TUTORIALS = (HERE / "ner.md", HERE / "pos.md", REPO / "docs" / "training.md")
FENCE = re.compile(r"^```console\b(.*)$")
FAST = " --max-epochs 1"
TIMEOUT = 3600  # seconds per command: a full default training of seq-pos1 on a loaded 2-core machine


@dataclass
class Step:
    command: list[str]  # the command's lines as written (continuations included)
    output: list[str] = field(default_factory=list)

    @property
    def shell(self) -> str:
        return "\n".join(self.command)


@dataclass
class Block:
    start: int  # line index of the opening fence
    end: int  # line index of the closing fence
    options: dict[str, int]  # tail=N, head=N; excerpt (shows some lines) as excerpt=1
    steps: list[Step]


def parse(lines: list[str]) -> list[Block]:
    """The console blocks of a Markdown file."""
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        options = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}
        if re.search(r"\bexcerpt\b", match.group(1)):
            options["excerpt"] = 1
        start, steps, i = i, [], i + 1
        while i < len(lines) and lines[i] != "```":
            line = lines[i]
            if line.startswith("$ "):
                command = [line[2:]]
                while command[-1].endswith("\\") and i + 1 < len(lines):
                    i += 1
                    command.append(lines[i])
                steps.append(Step(command))
            elif steps:
                steps[-1].output.append(line)
            i += 1
        blocks.append(Block(start, i, options, steps))
        i += 1
    return blocks


def fast_command(shell: str) -> str:
    """The command with one epoch per ``lfengine train`` (inserted before any redirection)."""
    return re.sub(r"(lfengine train [^|;&>\n]*?)(\s*(?:2>|>|\||$))", rf"\1{FAST}\2", shell, count=1)


def run_step(step: Step, workdir: Path, fast: bool) -> tuple[int, list[str]]:
    shell = fast_command(step.shell) if fast else step.shell
    env = dict(os.environ)
    env["LFDATA"] = str(LFDATA)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "100"
    env.setdefault("OMP_NUM_THREADS", "1")  # one torch thread: outputs independent of the core count
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
    )
    text = proc.stdout.replace(str(workdir.resolve()) + "/", "").replace(str(workdir.resolve()), ".")
    text = text.replace(str(LFDATA.resolve()), "$LFDATA").replace(str(LFDATA), "$LFDATA")
    return proc.returncode, text.rstrip("\n").split("\n") if text.strip() else []


def shorten(output: list[str], options: dict[str, int]) -> list[str]:
    if "tail" in options and len(output) > options["tail"]:
        return ["...", *output[-options["tail"] :]]
    if "head" in options and len(output) > options["head"]:
        return [*output[: options["head"]], "..."]
    return output


TIMES = [
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "HH:MM:SS"),  # log records' clock time
    (re.compile(r"\b\d+(\.\d+)? (CPU )?s\b"), "T s"),  # durations
    (re.compile(r"(after [^,\n]*epochs?), \d+:\d\d(:\d\d)?"), r"\1, M:SS"),  # the end block's clock
]
#: Written every few seconds while training, so how many appear depends on the machine's speed.
PERIODIC = re.compile(r"INFO epoch \d+: batch \d+/\d+, ")
STOPPED = "training stopped: # after # epochs,"  # why and when, in a shortened training
NUMBER = re.compile(r'"[^"]*"|(-?\d+(?:[.,:]\d+)*(?:e-?\d+)?)')


def _mask_numbers(line: str) -> str:
    """Every number outside a JSON string as ``#``."""
    return NUMBER.sub(lambda m: "#" if m.group(1) else m.group(0), line)


def _skeleton(value: object, in_list: bool = False) -> object:
    """A JSON value's shape: keys, list lengths, types, and the strings outside lists."""
    if isinstance(value, dict):
        return {k: _skeleton(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_skeleton(v, True) for v in value]
    if isinstance(value, str) and not in_list:
        return value
    return type(value).__name__


def normalise(lines: list[str], *, loose: bool, training: bool) -> list[str]:
    """What of an output must match: timings masked; with ``loose`` (the output of a shortened
    training, or of a command that uses its model) the shape only."""
    out = []
    for line in lines:
        if PERIODIC.search(line):
            continue
        for pattern, mask in TIMES:
            line = pattern.sub(mask, line)
        if loose:
            try:
                line = json.dumps(_skeleton(json.loads(line)))
            except ValueError:
                if line.startswith("warning: "):  # a model of one epoch earns other warnings
                    continue
                line = re.sub(
                    r"^training stopped: .* after [^,]*,", "training stopped: # after # epochs,", line
                )
                line = " ".join(_mask_numbers(line).split())  # columns widen with the numbers
        out.append(line)
    while loose and out and not out[-1]:  # the blank line before dropped warnings
        out.pop()
    if loose and training:  # a training of one epoch logs other things: from its end block on
        starts = [i for i, line in enumerate(out) if line.startswith("training stopped: ")]
        out = out[starts[-1] :] if starts else out
    return out


def _excerpt_matches(shown: list[str], real: list[str]) -> bool:
    """The shown lines (``...`` for omitted ones) appear in ``real`` in order."""
    position = 0
    for line in (line for line in shown if line != "..."):
        while position < len(real) and real[position] != line:
            position += 1
        if position == len(real):
            return False
        position += 1
    return True


def drift(
    path: Path, step: Step, shown: list[str], real: list[str], options: dict, loose: bool
) -> str | None:
    """None when the page shows what ran; else a diff saying where it does not."""
    training = step.shell.startswith("lfengine train")
    page = normalise(shown, loose=loose, training=training)
    actual = normalise(real, loose=loose, training=training)
    if options.get("excerpt"):
        if _excerpt_matches(page, actual):
            return None
    elif page == actual:
        return None
    diff = difflib.unified_diff(page, actual, "shown on the page", "printed now", lineterm="", n=1)
    return f"{path.name}: the output of `{step.shell}` differs from the page:\n" + "\n".join(diff)


def run_tutorial(path: Path, *, update: bool, fast: bool, workdir: Path) -> list[str]:
    """Run every command of one page; returns the failures (empty: all succeeded and, unless
    updating, printed what the page shows)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks = parse(lines)
    failures, trained = [], False
    for block in blocks:
        for step in block.steps:
            print(f"[{path.name}] $ {step.shell}", file=sys.stderr, flush=True)
            code, output = run_step(step, workdir, fast)
            if code != 0:
                failures.append(f"{path.name}: `{step.shell}` exited {code}:\n" + "\n".join(output[-30:]))
                return failures  # later commands depend on this one
            trained = trained or step.shell.startswith("lfengine train")
            output = [line for line in output if not PERIODIC.search(line)]  # timing-dependent
            real = output if block.options.get("excerpt") else shorten(output, block.options)
            if not update:
                problem = drift(path, step, step.output, real, block.options, loose=fast and trained)
                if problem:
                    failures.append(problem)
            elif not block.options.get("excerpt"):  # an excerpt's lines are chosen by hand
                step.output = real
    if update:
        for block in reversed(blocks):
            body = []
            for step in block.steps:
                body += ["$ " + step.command[0], *step.command[1:], *step.output]
            lines[block.start + 1 : block.end] = body
        path.write_text("\n".join(lines), encoding="utf-8")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tutorials", nargs="*", type=Path, default=list(TUTORIALS))
    parser.add_argument("--update", action="store_true", help="paste the outputs into the tutorials")
    parser.add_argument("--fast", action="store_true", help=f"add{FAST} to every lfengine train")
    parser.add_argument("--workdir", type=Path, help="where the commands run (default: a fresh temp dir)")
    args = parser.parse_args(argv)
    if not (LFDATA / "seq-pos1.meta.json").is_file():
        print(f"skipped: the shared LF files are not at {LFDATA}")
        return 0
    if args.update and args.fast:
        parser.error("--update pastes real outputs: run it without --fast")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.tutorials:
            workdir = (args.workdir or Path(tmp)) / path.stem
            workdir.mkdir(parents=True, exist_ok=True)
            failures += run_tutorial(path, update=args.update, fast=args.fast, workdir=workdir)
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
