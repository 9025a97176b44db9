"""Bounded resources (issue 19): no request or file makes the engine read its own stdin, read an
endless file, wait on a FIFO, or hold memory without a bound; every refusal is a typed error
and the engine keeps serving."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from timeouts import scaled

from lfengine import service
from lfengine.data.synthetic import write_classification_corpus
from lfengine.options import TrainOptions

REPO = Path(__file__).resolve().parent.parent
CLI_ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(meta file, model directory) of a small classifier."""
    root = tmp_path_factory.mktemp("trained")
    meta = write_classification_corpus(root, 60, seed=3)
    service.train(str(meta), str(root / "model"), TrainOptions(max_epochs=1, threads=1))
    return meta, root / "model"


def _cli(*args: str, memory_bytes: int | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    def limit() -> None:  # a regression must fail this test, not exhaust the machine
        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))

    return subprocess.run(
        [sys.executable, "-m", "lfengine", *args],
        cwd=REPO,
        env=CLI_ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        preexec_fn=limit,
    )


# --- item 7: a protocol path is never the engine's own stdin -------------------------------------
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_evaluate_with_data_dash_is_invalid_params_and_the_next_request_is_answered(trained, engines, fmt):
    meta, model_dir = trained
    engine = engines(fmt)
    reply = engine.request("evaluate", {"model": str(model_dir), "data": "-"})
    assert reply["error"]["code"] == -32602 and reply["error"]["data"]["param"] == "data", reply
    assert "stdin carries the protocol" in reply["error"]["message"]
    for method, params in [("describe", {"meta": "-"}), ("train", {"meta": "-", "model": "x"})]:
        assert engine.request(method, params)["error"]["code"] == -32602
    assert engine.request("status")["result"]["state"] == "idle"  # not swallowed as data
    assert engine.finish()[0] == 0


# --- item 8: CLI evaluate on a device or a FIFO ends at once ------------------------------------
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_cli_evaluate_on_dev_zero_is_refused_without_reading_it(trained):
    result = _cli("evaluate", str(trained[1]), "/dev/zero", memory_bytes=3 * 2**30, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "a device where a regular file is needed" in result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr


def test_cli_evaluate_on_a_fifo_is_refused_without_waiting_for_a_writer(trained, tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "t.data.json"
    os.mkfifo(fifo)
    result = _cli("evaluate", str(trained[1]), str(fifo), timeout=30)
    assert result.returncode == 1 and "FIFO" in result.stderr, result.stderr


# --- item 14: --config is read with a size limit ------------------------------------------------
def test_a_huge_config_file_is_an_option_error_not_a_memory_error(trained, tmp_path):
    from lfengine.paths import MAX_CONFIG_BYTES

    big = tmp_path / "options.json"
    with open(big, "wb") as handle:  # sparse: costs no disk
        handle.truncate(MAX_CONFIG_BYTES + 1)
    result = _cli("train", str(trained[0]), str(tmp_path / "m"), "--config", str(big))
    assert result.returncode == 1, result.stderr
    assert f"over the limit of {MAX_CONFIG_BYTES} bytes" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    result = _cli("train", str(trained[0]), str(tmp_path / "m"), "--config", str(fifo), timeout=30)
    assert result.returncode == 1 and "FIFO" in result.stderr, result.stderr


def test_config_from_a_model_directory_still_reads_its_options(trained, tmp_path):
    from lfengine.cli.arguments import read_config

    options = read_config(str(trained[1]))
    assert options["max_epochs"] == 1 and "resume" not in options
    (tmp_path / "o.json").write_text(json.dumps({"max_epochs": 3}), encoding="utf-8")
    assert read_config(str(tmp_path / "o.json")) == {"max_epochs": 3}
