"""gate-train / gate-apply as commands: exit codes, messages on stderr, what they write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from timeouts import scaled

from lfengine.description import render_description
from lfengine.gate import gate_train_main

REPO = Path(__file__).resolve().parent.parent
APPLY = "import sys; from lfengine.gate import gate_apply_main; sys.exit(gate_apply_main(sys.argv[1:]))"


def test_help_lists_every_old_option_on_stdout(capsys):
    assert gate_train_main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("--embs", "--valeveryinstances", "--nocreate", "--elmo", "--save_config_file"):
        assert f"\n  {name}" in out


def test_unknown_option_exits_non_zero_with_the_reason(capsys):
    assert gate_train_main(["m.json", "p", "--batch_size", "3"]) == 2
    assert (
        "gate-train: error: unknown option --batch_size; did you mean --batchsize?" in capsys.readouterr().err
    )


def test_nocreate_exits_0_at_once_after_the_warnings(tmp_path, capsys):
    prefix = tmp_path / "FileJsonPyTorch.model"
    code = gate_train_main([str(tmp_path / "absent.meta.json"), str(prefix), "--nocreate", "--elmo", "e"])
    assert code == 0
    assert "gate-train: warning: --elmo e is ignored" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_save_config_file_is_written_even_with_nocreate(tmp_path):
    saved = tmp_path / "saved.cfg"
    assert (
        gate_train_main(["m.json", "p", "--maxepochs", "3", "--nocreate", "--save_config_file", str(saved)])
        == 0
    )
    assert "maxepochs = 3" in saved.read_text(encoding="utf-8").splitlines()


def test_missing_meta_file_is_a_clear_error(tmp_path, capsys):
    assert gate_train_main([str(tmp_path / "crvd.meta.json"), str(tmp_path / "m")]) == 1
    assert "gate-train: error: meta file not found:" in capsys.readouterr().err


def test_missing_valfile_is_a_clear_error(lfdata, tmp_path, capsys):
    meta = str(lfdata / "class-ionosphere.meta.json")
    assert gate_train_main([meta, str(tmp_path / "m"), "--valfile", str(tmp_path / "v.json")]) == 1
    assert "--valfile not found" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_cuda_true_without_a_gpu_fails_before_training(lfdata, tmp_path, capsys):
    meta = str(lfdata / "class-ionosphere.meta.json")
    assert gate_train_main([meta, str(tmp_path / "m"), "--cuda", "yes"]) == 1
    assert "--cuda true, but no usable GPU" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_notrain_prints_the_network_and_trains_nothing(lfdata, tmp_path, capsys):
    meta = str(lfdata / "class-ionosphere.meta.json")
    assert gate_train_main([meta, str(tmp_path / "FileJsonPyTorch.model"), "--notrain"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("task: classification\n")  # the text ``lfengine describe`` prints
    assert "\narchitecture:\n" in out and "\nsettings this network uses:\n" in out
    assert list(tmp_path.iterdir()) == []


def test_description_text_shows_vocabularies_and_sources():
    text = render_description(
        {
            "task": "sequence",
            "is_sequence": True,
            "features": 3,
            "architecture": {"text": "Tagger\n  lstm", "parameters": 1234},
            "vocabularies": [
                {
                    "emb_id": "token",
                    "size": 3998,
                    "dims": 88,
                    "mode": "yes",
                    "pretrained": True,
                    "sources": {"dims": "file"},
                }
            ],
            "labels": ["O", "PER|B"],
            "hyperparameters": {"batch_size": {"value": 32, "source": "heuristic"}},
        }
    )
    lines = text.splitlines()
    assert lines[0] == "task: sequence (sequences)"
    assert "Tagger" in lines and "  lstm" in lines
    assert any(line.split()[:7] == ["token", "size", "3998", "dims", "88", "mode", "yes"] for line in lines)
    assert "labels (2, index order): O, PER|B" in lines
    assert lines[-1].split() == ["batch_size", "32", "(heuristic)"]


def run_apply(args: list[str], requests: bytes, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", APPLY, *args],
        input=requests,
        capture_output=True,
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=scaled(120),
    )


def test_apply_with_a_bad_option_answers_every_request_with_the_reason(tmp_path):
    result = run_apply([str(tmp_path / "m"), "--cuda", "False", "--bogus"], b"[1]\n[2]\n", tmp_path)
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1
    assert len(replies) == 2 and replies[0] == replies[1] and replies[0]["status"] == "error"
    assert replies[0]["error"].startswith("unknown option --bogus; known options: --config_file, --cuda,")
    assert b"gate-apply: error: unknown option --bogus" in result.stderr


def test_apply_without_a_model_answers_every_request_with_the_reason(tmp_path):
    prefix = tmp_path / "FileJsonPyTorch.model"
    result = run_apply(
        [str(prefix), "--metafile", str(tmp_path / "crvd.meta.json")], b"[1]\r\n[]\r\n", tmp_path
    )
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1 and len(replies) == 2
    assert replies[1]["status"] == "error"
    assert f"no model at {prefix}.d: was training run with --notrain or --nocreate" in replies[1]["error"]


def test_apply_recognises_a_model_of_the_old_wrapper(tmp_path):
    prefix = tmp_path / "FileJsonPyTorch.model"
    (tmp_path / "FileJsonPyTorch.model.wrapper.pickle").write_bytes(b"\x80\x04K\x01.")
    result = run_apply([str(prefix)], b"[1]\n", tmp_path)
    assert "model of the old PyTorch wrapper (Python pickles" in json.loads(result.stdout)["error"]


def test_claimed_stdout_carries_replies_only():
    """Once the reply channel is claimed, a stray print (ours or a library's) lands on stderr."""
    code = (
        "import os, sys; from lfengine.runtime.process import claim_stdout\n"
        "replies = claim_stdout()\n"
        "print('library banner'); sys.stdout.flush(); os.write(1, b'C-level noise\\n')\n"
        'replies.write(b\'{"status":"ok"}\\n\'); replies.flush()\n'
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env={"PYTHONPATH": str(REPO)}, timeout=scaled(60)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b'{"status":"ok"}\n'
    assert b"library banner" in result.stderr and b"C-level noise" in result.stderr


def test_resume_after_a_kill_before_the_first_checkpoint_trains_afresh(lfdata, tmp_path, caplog):
    """GATE reruns train.sh with the same parameters: --resume must work when the killed run
    had not saved anything yet (an empty model directory)."""
    prefix = tmp_path / "FileJsonPyTorch.model"
    (tmp_path / "FileJsonPyTorch.model.d").mkdir()
    meta = str(lfdata / "class-ionosphere.meta.json")
    with caplog.at_level("WARNING", logger="lfengine"):
        assert gate_train_main([meta, str(prefix), "--resume", "--maxepochs", "1"]) == 0
    assert any("starting afresh" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "FileJsonPyTorch.model.d" / "model.json").is_file()
