"""Process settings for training: oneDNN keeps no kernels in a process that trains
(bench/bench_memory.py shows why), OpenMP threads wait passively (bench/bench_scale.py); the
user's environment wins over both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.timeouts import scaled

REPO = Path(__file__).resolve().parent.parent

# A real training in a fresh process, which then reports the settings it ran under.
SCRIPT = """
import json, os, sys
from pathlib import Path
from lfengine import service
from lfengine.runtime import allocator
from lfengine.data.synthetic import write_sequence_corpus
from lfengine.options import TrainOptions
meta = write_sequence_corpus(Path(sys.argv[1]) / "data", 120, seed=3)
result = service.train(str(meta), sys.argv[1] + "/model", TrainOptions(max_epochs=1, threads=1, seed=1))
print(json.dumps({"kernels": os.environ.get(allocator.KERNEL_CACHE_VARIABLE),
                  "epochs": result["epochs"]}))
"""


def _last_line(argv: list[str], env: dict[str, str], limit: float) -> str:
    """The last line a fresh Python process printed."""
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=scaled(limit),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def _train_and_report(tmp_path: Path, env: dict[str, str]) -> dict:
    return json.loads(_last_line(["-c", SCRIPT, str(tmp_path)], env, 120))


def test_a_training_process_keeps_no_onednn_kernels(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    report = _train_and_report(tmp_path, env)
    assert report == {"kernels": "0", "epochs": 1}


def test_the_users_kernel_cache_setting_wins(tmp_path):
    report = _train_and_report(tmp_path, {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "7"})
    assert report["kernels"] == "7" and report["epochs"] == 1


def _wait_policy_seen(env: dict[str, str]) -> str:
    """OMP_WAIT_POLICY in a fresh process that imports lfengine (as every command does) first."""
    return _last_line(["-c", "import lfengine, os, torch; print(os.environ.get('OMP_WAIT_POLICY'))"], env, 60)


def test_openmp_threads_wait_passively_unless_the_environment_says_otherwise():
    plain = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    assert _wait_policy_seen(plain) == "PASSIVE"
    assert _wait_policy_seen({**plain, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
    assert _wait_policy_seen({**plain, "GOMP_SPINCOUNT": "300000"}) == "None"
