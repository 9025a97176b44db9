"""Bounded resources (issue 19): no request or file makes the engine read its own stdin, read an
endless file, wait on a FIFO, or hold memory without a bound; every refusal is a typed error
and the engine keeps serving."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_untrusted_input
from timeouts import scaled

from lfengine import service
from lfengine.options import TrainOptions

REPO = Path(__file__).resolve().parent.parent
CLI_ENV = {**os.environ, "PYTHONPATH": str(REPO)}
trained = test_untrusted_input.trained  # (meta file, model directory) of a small classifier


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
    from lfengine.files.paths import MAX_CONFIG_BYTES

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


# --- item 14: serve's exit codes -----------------------------------------------------------------
def _serve() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lfengine", "serve"],
        cwd=REPO,
        env=CLI_ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_serve_exits_4_when_the_client_closes_its_stdout():
    engine = _serve()
    engine.stdout.close()
    engine.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"status"}\n')
    engine.stdin.flush()
    _, err = engine.communicate(timeout=scaled(60))
    assert engine.returncode == 4, err.decode()
    assert b"Traceback" not in err


def _catches(pid: int, number: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (number - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_sigterm_while_the_engine_starts_is_a_clean_exit():
    """The signal arrives while the command line still imports torch (seconds): before, the
    default action killed the process (-15) with no word."""
    engine = _serve()
    deadline = time.monotonic() + scaled(30)
    while not _catches(engine.pid, signal.SIGTERM) and time.monotonic() < deadline:
        time.sleep(0.002)
    assert "libtorch" not in Path(f"/proc/{engine.pid}/maps").read_text(), (
        "SIGTERM is caught only once torch is loaded"
    )
    engine.send_signal(signal.SIGTERM)
    _, err = engine.communicate(timeout=scaled(60))
    assert engine.returncode == 0, err.decode()
    assert b"Traceback" not in err


def test_other_commands_still_die_of_an_early_sigterm(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-m", "lfengine", "info"], cwd=REPO, env=CLI_ENV, stdout=subprocess.PIPE
    )
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=scaled(60))
    assert child.returncode == -signal.SIGTERM


# --- item 12: what one message, and the requests waiting, may cost in memory ---------------------
SMALL_CONTAINER_LIMIT = (
    "import lfengine.protocol.stream as stream; stream.MAX_DECODED_CONTAINERS = 1000; "
    "import lfengine.serving.server as server; server.MAX_QUEUED_BYTES = 8192; "
)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_a_message_decoding_to_too_many_arrays_is_refused_and_the_next_is_answered(engines, fmt):
    """The limit is counted while decoding (msgpack) or from the brackets before it (JSON), so
    a message of a few bytes per array never becomes gigabytes of lists. The engine here has a
    limit of 1000 arrays and objects (MAX_DECODED_CONTAINERS is 4M)."""
    engine = engines(fmt, prelude=SMALL_CONTAINER_LIMIT)
    fits = engine.request("status", {"padding": [[]] * 990})
    assert "result" in fits, fits
    engine.send({"jsonrpc": "2.0", "id": "big", "method": "status", "params": {"padding": [[]] * 1001}})
    refused = engine.receive()
    assert refused["error"]["code"] == -32001 and refused["error"]["data"]["type"] == "DecodedTooLarge"
    assert "more than 1000 arrays and objects" in refused["error"]["message"]
    assert engine.request("status")["result"]["state"] == "idle"
    assert engine.finish()[0] == 0


def test_a_reader_stops_decoding_at_the_limit_and_skips_the_rest(monkeypatch):
    """In process: 1 MB of empty msgpack arrays stops after the limit's worth, not at the end."""
    import io

    import msgpack

    from lfengine.protocol import msgpack_framing, stream

    monkeypatch.setattr(stream, "MAX_DECODED_CONTAINERS", 500)
    built = []

    class Counting(msgpack_framing.ContainerBudget):
        def count(self, value):
            built.append(1)
            return super().count(value)

    monkeypatch.setattr(msgpack_framing, "ContainerBudget", Counting)
    n = 2**20
    message = b"\xdd" + n.to_bytes(4, "big") + b"\x90" * n
    after = msgpack.packb({"jsonrpc": "2.0", "id": 2, "method": "status"})
    reader = msgpack_framing.MsgpackReader(stream.ByteSource(io.BytesIO(message + after)), 2**24)
    items = list(reader)
    assert isinstance(items[0], stream.DecodedTooLarge) and items[1]["id"] == 2
    assert len(built) <= 501 + 1  # the status map itself


def test_requests_waiting_behind_a_training_are_bounded_in_bytes(trained, engines, tmp_path):
    """The engine here lets waiting requests hold 8 KiB (MAX_QUEUED_BYTES is 64 MiB)."""
    meta, model_dir = trained
    engine = engines("json", prelude=SMALL_CONTAINER_LIMIT)
    options = {"max_epochs": 1000, "es_patience": 1000, "threads": 1}
    engine.send(
        {
            "jsonrpc": "2.0",
            "id": "train",
            "method": "train",
            "params": {"meta": str(meta), "model": str(tmp_path / "m"), "options": options},
        }
    )
    padding = "x" * 5000
    for name in ("first", "second"):
        engine.send(
            {
                "jsonrpc": "2.0",
                "id": name,
                "method": "describe",
                "params": {"model": str(model_dir), "padding": padding},
            }
        )
    engine.send({"jsonrpc": "2.0", "id": "cancel", "method": "cancel"})
    replies = {reply["id"]: reply for reply in (engine.receive() for _ in range(4))}
    assert replies["train"]["error"]["code"] == 1030 or replies["train"]["result"]["stopped"] == "cancelled"
    assert "result" in replies["first"], replies["first"]
    busy = replies["second"]["error"]
    assert busy["code"] == -32003 and busy["data"]["limit"] == 8192, busy
    assert engine.request("describe", {"model": str(model_dir), "padding": padding})["result"]
    assert engine.finish()[0] == 0


def test_describe_of_a_large_vocabulary_draws_no_embedding_matrix(tmp_path):
    """describe shows shapes: the allocations tracemalloc sees (numpy's too) stay below one table of
    the vocabulary (50k words here; 1M took 3 GB)."""
    import tracemalloc

    from lfengine import planning
    from lfengine.data.synthetic import LfAttribute, write_lf

    words = 50_000
    meta = write_lf(tmp_path, "v", [LfAttribute("A", "w")], [[["a"], "x"], [["b"], "y"]], is_sequence=False)
    document = json.loads(meta.read_text(encoding="utf-8"))
    stats = next(iter(document["featureStats"].values()))
    stats["stringCounts"] = {f"w{i}": 1 for i in range(words)}
    meta.write_text(json.dumps(document), encoding="utf-8")
    planning.describe(str(meta), TrainOptions())  # the first build on the meta device imports a lot
    tracemalloc.start()
    try:
        described = planning.describe(str(meta), TrainOptions())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    vocabulary = described["vocabularies"][0]
    table_bytes = vocabulary["size"] * vocabulary["dims"] * 4
    assert (
        vocabulary["size"] == words + 2
        and described["architecture"]["parameters"] >= words * vocabulary["dims"]
    )
    assert peak < table_bytes, (peak, table_bytes)  # drawing it took 3 tables (float64 twice)


def test_random_embedding_rows_are_the_numbers_of_one_whole_draw():
    """Drawn in blocks to save memory, but the same rows as before (models stay reproducible)."""
    import numpy as np

    from lfengine.data.embeddings import RANDOM_BLOCK_ROWS, RANDOM_STD, initial_matrix

    n, dims = RANDOM_BLOCK_ROWS * 2 + 5, 3
    matrix = initial_matrix(
        [str(i) for i in range(n)], dims, onehot=False, pretrained=None, rng=np.random.default_rng(7)
    )
    expected = (np.random.default_rng(7).standard_normal((n, dims)) * RANDOM_STD).astype(np.float32)
    expected[0] = 0.0
    assert matrix.dtype == np.float32 and np.array_equal(matrix, expected)


# --- item 15: an apply-batch of many sentences runs in passes bounded by padded elements ---------
def test_sequence_passes_are_bounded_by_padded_elements_and_change_no_result(tmp_path, monkeypatch):
    """A pass's activations grow with sequences x its longest sequence (the character encoder's
    tensors above all): each pass stays within the budget, and the results are those of one pass."""
    import numpy as np

    from lfengine import predictor
    from lfengine.data.reader import encode_instances
    from lfengine.data.synthetic import write_sequence_corpus

    meta = write_sequence_corpus(tmp_path, 60, seed=4)
    options = TrainOptions.from_dict({"max_epochs": 1, "threads": 1, "model": {"crf": True}})
    service.train(str(meta), str(tmp_path / "m"), options)
    model = service.load_model(str(tmp_path / "m"))
    lines = meta.with_name(meta.name.replace(".meta.", ".data.")).read_text(encoding="utf-8").splitlines()
    sentences = [json.loads(line)[0] for line in lines] * 5  # 300 sentences of varied lengths
    data = encode_instances(model.codec, sentences)
    lengths = data.lengths()
    monkeypatch.setattr(predictor, "MAX_PADDED_ELEMENTS_PER_PASS", 64)
    passes = model.predictor.passes(data)
    assert len(passes) > 1
    for items in passes:
        assert len(items) * lengths[items].max() <= max(64, lengths[items].max())
    assert sorted(np.concatenate(passes).tolist()) == sorted(np.flatnonzero(lengths > 0).tolist())
    data_file = str(meta).replace(".meta.", ".data.")
    small, small_loss = model.apply(sentences, distribution=True), model.evaluate(data_file)["loss"]
    monkeypatch.setattr(predictor, "MAX_PADDED_ELEMENTS_PER_PASS", 10**9)
    assert len(model.predictor.passes(data)) == 1
    whole, whole_loss = model.apply(sentences, distribution=True), model.evaluate(data_file)["loss"]
    assert abs(small_loss - whole_loss) < 1e-4 * whole_loss  # a CRF's loss is per sequence
    assert [r["label"] for r in small] == [r["label"] for r in whole]
    for a, b in zip(small, whole):
        assert np.allclose(a["confidence"], b["confidence"], atol=1e-5)
        assert np.allclose(a["distribution"], b["distribution"], atol=1e-5)
