"""`lfengine train` on a real terminal (a pseudo-terminal of 80 and of 200 columns): the progress
bar never gets wider than the terminal, log records never land on the bar's line, the bar shows
items/s and an ETA, and the end of the training shows a sparkline."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from lfengine.data.synthetic import write_classification_corpus

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
LOG_RECORD = re.compile(r"\d\d:\d\d:\d\d (INFO|WARNING|ERROR) ")


def run_in_terminal(
    args: list[str],
    columns: int,
    cwd: Path,
    timeout: float = 240,
    resize_to: int | None = None,
    interrupt: bool = False,
) -> tuple[int, str]:
    """Run ``python -m lfengine ARGS`` in ``cwd`` with stdout and stderr on a pty of ``columns``
    columns; with ``resize_to``, the terminal is resized (and SIGWINCH sent, as a terminal
    emulator does) once the first bar is drawn; with ``interrupt``, SIGINT is sent then (Ctrl-C)."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(columns)}
    process = subprocess.Popen(
        [sys.executable, "-m", "lfengine", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
            if interrupt and b"items/s" in data:
                process.send_signal(signal.SIGINT)
                chunks.append(b"<<interrupted>>")
                interrupt = False
            if resize_to is not None and b"items/s" in data:
                fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, resize_to, 0, 0))
                process.send_signal(signal.SIGWINCH)
                chunks.append(b"\n<<resized>>\n")
                resize_to = None
        elif process.poll() is not None:
            break
    else:
        process.kill()
        pytest.fail(f"lfengine did not finish within {timeout} s")
    os.close(leader)
    os.close(follower)
    return process.wait(timeout=30), b"".join(chunks).decode("utf-8", errors="replace")


def screen_lines(output: str) -> list[str]:
    """What each terminal line shows at the end: the text after its last carriage return."""
    return [ANSI.sub("", line.split("\r")[-1]) for line in output.replace("\r\n", "\n").split("\n")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_classification_corpus(tmp_path_factory.mktemp("tty"), 400, seed=5)


@pytest.mark.parametrize("columns", [80, 200])
def test_the_bar_fits_the_terminal_and_log_lines_stay_apart(
    corpus: Path, tmp_path: Path, columns: int
) -> None:
    # Short relative paths, so that every line, not only the bar, can fit 80 columns.
    code, output = run_in_terminal(
        ["train", corpus.name, f"m{columns}", "--max-epochs", "4", "--threads", "1"], columns, corpus.parent
    )
    assert code == 0, output
    written = [ANSI.sub("", piece) for piece in output.replace("\r\n", "\n").replace("\n", "\r").split("\r")]
    assert max(len(piece) for piece in written) <= columns, max(written, key=len)
    bars = [piece for piece in written if piece.startswith("epoch ") and "[" in piece and "eta" in piece]
    assert bars, "no progress bar drawn"
    assert any("items/s" in bar for bar in bars)
    lines = screen_lines(output)
    records = [line for line in lines if LOG_RECORD.search(line)]
    assert len([r for r in records if "validation loss" in r]) == 4  # one summary line per validation
    for line in lines:
        if LOG_RECORD.search(line):
            assert LOG_RECORD.match(line), f"log record glued to other output: {line!r}"
    assert any(line.startswith("  curve ") and "accuracy" in line for line in lines)  # the sparkline
    assert any(line.startswith("training stopped: reached max_epochs after 4 epochs") for line in lines)


def test_not_a_terminal_gives_plain_log_lines(corpus: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "lfengine",
            "train",
            str(corpus),
            str(tmp_path / "m"),
            "--max-epochs",
            "2",
            "--threads",
            "1",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr and "\x1b" not in run.stderr
    assert all(
        LOG_RECORD.match(line) for line in run.stderr.splitlines() if line and not line.startswith(" ")
    )
    assert "curve" not in run.stdout  # the sparkline is for terminals


def test_the_bar_is_redrawn_at_the_new_width_after_a_resize(corpus: Path) -> None:
    code, output = run_in_terminal(
        ["train", corpus.name, "resized", "--max-epochs", "6", "--threads", "1"],
        200,
        corpus.parent,
        resize_to=70,
    )
    assert code == 0, output
    before, marker, after = output.partition("<<resized>>")
    assert marker, "the training ended before the terminal could be resized"

    def bars(text: str) -> list[str]:
        pieces = [ANSI.sub("", p) for p in text.replace("\r\n", "\n").replace("\n", "\r").split("\r")]
        return [p for p in pieces if p.startswith("epoch ") and "[" in p]

    assert max(len(bar) for bar in bars(before)) > 70  # it was using the width it had
    assert bars(after) and max(len(bar) for bar in bars(after)) <= 70


def test_ctrl_c_clears_the_bar_and_prints_the_full_resume_command(corpus: Path) -> None:
    code, output = run_in_terminal(
        ["train", corpus.name, "stopped", "--max-epochs", "40", "--threads", "1"],
        80,
        corpus.parent,
        interrupt=True,
    )
    assert code == 130, output
    _, marker, after = output.partition("<<interrupted>>")
    assert marker, "the training ended before it could be interrupted"
    # A bar drawn while the signal was on its way may still arrive after the marker: what counts
    # is that none is drawn once the engine has said it is stopping.
    _, said, after = after.partition("interrupted: stopping")
    assert said, after
    pieces = [ANSI.sub("", p) for p in after.replace("\r\n", "\n").replace("\n", "\r").split("\r")]
    assert not [p for p in pieces if p.startswith("epoch ") and "[" in p]  # no bar after Ctrl-C
    assert not [p for p in pieces if re.search(r"INFO epoch \d+: batch", p)]  # nor its log-line stand-in
    lines = [line for line in screen_lines(after) if line.strip()]
    assert (
        lines[-1]
        == "to continue this training: lfengine train class-synth.meta.json stopped --resume --threads 1"
    )
