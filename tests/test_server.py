"""The engine end to end: a real subprocess speaking JSON lines or msgpack on its stdin/stdout."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from engine_process import TIMEOUT, Engine

REPO = Path(__file__).resolve().parent.parent
FORMATS = ["json", "msgpack"]


def error_of(reply: dict) -> tuple[Any, int]:
    assert "result" not in reply, reply
    return reply["id"], reply["error"]["code"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_init_status_shutdown(engines, fmt):
    engine = engines(fmt)
    init = engine.request("init", {"notifications": ["progress", "telepathy"], "client": {"name": "test"}})
    result = init["result"]
    assert result["protocol"] == "1.1" and result["format"] == fmt
    assert result["engine"]["name"] == "lfengine"
    assert set(result["capabilities"]["methods"]) == {
        "init",
        "train",
        "apply-batch",
        "describe",
        "evaluate",
        "status",
        "cancel",
        "shutdown",
    }
    assert result["settings"]["notifications"] == ["progress"]  # unknown kinds are ignored

    status = engine.request("status")["result"]
    assert status["state"] == "idle" and status["models"] == [] and status["training"] is None
    assert status["protocol"] == "1.1"  # num_labels (1.1) and evaluate's confusion (1.1), §9

    assert engine.request("shutdown")["result"] == {}
    engine.send({"jsonrpc": "2.0", "id": 99, "method": "status"})  # read by nobody
    exit_code, rest = engine.finish()
    assert (exit_code, rest) == (0, [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_requests_get_error_replies_and_the_engine_keeps_serving(engines, fmt):
    engine = engines(fmt)
    assert error_of(engine.request("no-such-method")) == (1, -32601)
    assert error_of(engine.request("train", {"model": "m"})) == (2, -32602)  # meta missing
    assert error_of(engine.request("train", ["meta", "model"])) == (3, -32602)  # positional
    assert error_of(engine.request("status", jsonrpc="1.0")) == (4, -32600)
    assert error_of(engine.request("init", {"threads": 0})) == (5, -32602)
    assert error_of(engine.request("init", {"protocol": "2.0"})) == (6, -32602)
    assert error_of(engine.request("init", {"device": "tpu"})) == (7, 1010)  # OptionError
    reply = engine.request("apply-batch", {"model": "nowhere", "instances": [[1.0]]})
    assert error_of(reply) == (8, 1021)  # UnknownModelError
    assert reply["error"]["data"] == {"model": "nowhere", "type": "UnknownModelError"}
    assert error_of(engine.request("describe", {})) == (9, -32602)  # neither model nor meta
    assert engine.request("status")["result"]["state"] == "idle"
    assert engine.finish() == (0, [])


@pytest.mark.parametrize(("fmt", "garbage"), [("json", b"{oops\n"), ("msgpack", b"\xc1")])
def test_unparseable_input_gets_a_parse_error_with_null_id(engines, fmt, garbage):
    engine = engines(fmt)
    engine.request("status")
    engine.send_raw(garbage)
    assert error_of(engine.receive()) == (None, -32700)
    assert engine.request("status")["result"]["state"] == "idle"
    assert engine.finish() == (0, [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_oversized_message_is_refused_and_the_next_one_served(engines, fmt):
    engine = engines(fmt, serve_args=", max_message_bytes=4096")
    engine.request("status")
    engine.send(
        {"jsonrpc": "2.0", "id": 50, "method": "apply-batch", "params": {"instances": [[0.5] * 5000]}}
    )
    reply = engine.receive()
    assert error_of(reply) == (None, -32001)
    assert reply["error"]["data"]["limit"] == 4096
    assert engine.request("status")["result"]["state"] == "idle"
    assert engine.finish() == (0, [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_pipelined_requests_are_answered_in_order_and_end_of_input_exits_zero(engines, fmt):
    engine = engines(fmt)
    messages = [
        {"jsonrpc": "2.0", "id": "a", "method": "init", "params": {}},
        {"jsonrpc": "2.0", "id": "b", "method": "status"},
        {"jsonrpc": "2.0", "method": "cancel"},  # a notification: no reply
        {"jsonrpc": "2.0", "id": "c", "method": "nope"},
        {"jsonrpc": "2.0", "id": "d", "method": "cancel"},
        {"jsonrpc": "2.0", "id": "e", "method": "apply-batch", "params": {"model": "m", "instances": []}},
        {"jsonrpc": "2.0", "id": "f", "method": "status"},
    ]
    engine.send_raw(b"".join(engine.encode(m) for m in messages))
    exit_code, replies = engine.finish()
    assert exit_code == 0
    assert [r["id"] for r in replies] == ["a", "b", "c", "d", "e", "f"]
    assert replies[3]["result"] == {"cancelled": []}
    assert [("error" in r) for r in replies] == [False, False, True, False, True, False]


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_input_exits_zero_without_output(engines, fmt):
    assert engines(fmt).finish() == (0, [])


def test_non_ascii_is_escaped_in_json_replies(engines):
    engine = engines("json")
    engine.send_raw('{"jsonrpc":"2.0","id":"é","method":"müde"}\n'.encode())
    reply = engine.receive()  # receive() asserts the line is ASCII-only
    assert reply["id"] == "é" and "müde" in reply["error"]["message"]


def test_stray_prints_during_serving_go_to_stderr(engines):
    prelude = (
        "import os, threading\n"
        "def stray():\n"
        "    print('stray print')\n"
        "    os.write(1, b'stray fd write\\n')\n"
        "threading.Timer(0.3, stray).start()\n"
    )
    engine = engines("json", prelude=prelude)
    time.sleep(0.8)
    assert engine.request("status")["result"]["state"] == "idle"
    assert engine.finish() == (0, [])  # finish() parses every remaining line as JSON
    assert "stray print" in engine.error_output() and "stray fd write" in engine.error_output()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_termination_signal_exits_zero(engines, signum):
    engine = engines("json")
    engine.request("init", {})
    engine.process.send_signal(signum)
    assert engine.process.wait(timeout=TIMEOUT) == 0


def test_unrecoverable_msgpack_stream_replies_then_exits_3(engines):
    engine = engines("msgpack", serve_args=", max_message_bytes=4096")
    engine.request("status")
    engine.send_raw(b'{"jsonrpc": "2.0", "id": 2, "method": "status"}\n' * 200)  # JSON to a msgpack engine
    assert error_of(engine.receive()) == (None, -32700)
    reply = engine.receive()
    assert error_of(reply) == (None, -32002)
    assert engine.finish() == (3, [])


# --- with the real service: training, cancellation, application (real LF data) ----------------

LFDATA = REPO.parent / "shared" / "lfdata"


@pytest.fixture
def ionosphere() -> Path:
    meta = LFDATA / "class-ionosphere.meta.json"
    if not meta.is_file():
        pytest.skip(f"LF reference data not found at {LFDATA}")
    return meta


def next_reply(engine: Engine, notifications: list[dict]) -> dict:
    """The next response, collecting the notifications that come before it."""
    while True:
        message = engine.receive()
        if "id" in message:
            return message
        notifications.append(message)


def test_train_then_apply_a_named_model_without_notifications(engines, ionosphere, tmp_path):
    engine = engines("json")
    engine.request("init", {"threads": 1})
    params = {
        "meta": str(ionosphere),
        "model": str(tmp_path / "m"),
        "name": "iono",
        "options": {"max_epochs": 1},
    }
    train = engine.request("train", params)["result"]  # no opt-in: the next line is the reply
    assert train["stopped"] == "max-epochs" and train["name"] == "iono"

    instances = [[0.5] * 34, [1.0, 0.0] * 17]
    applied = engine.request("apply-batch", {"model": "iono", "instances": instances, "distribution": True})
    result = applied["result"]
    assert sorted(result["labels"]) == ["b", "g"]
    assert len(result["predictions"]) == 2
    for prediction in result["predictions"]:
        assert prediction["label"] in result["labels"]
        assert prediction["confidence"] == max(prediction["distribution"])
        assert sum(prediction["distribution"]) == pytest.approx(1.0, abs=1e-5)

    bad = engine.request("apply-batch", {"model": "iono", "instances": [[0.5] * 34, [0.5] * 3]})
    assert error_of(bad) == (4, 1002) and bad["error"]["data"]["index"] == 1  # DataLineError

    models = engine.request("status")["result"]["models"]
    assert [(m["name"], m["task"], m["labels"]) for m in models] == [("iono", "classification", 2)]
    assert engine.finish() == (0, [])


def test_cancel_stops_a_running_training_and_replies_stay_in_order(engines, ionosphere, tmp_path):
    engine = engines("json")
    engine.request("init", {"notifications": ["progress"], "threads": 1})
    engine.send(
        {
            "jsonrpc": "2.0",
            "id": "train",
            "method": "train",
            "params": {
                "meta": str(ionosphere),
                "model": str(tmp_path / "m"),
                "options": {"max_epochs": 10_000},
            },
        }
    )
    notifications: list[dict] = []
    while not notifications:
        message = engine.receive()
        assert "id" not in message, message  # the training must still be running
        notifications.append(message)
    assert notifications[0]["method"] == "progress" and notifications[0]["params"]["id"] == "train"

    engine.send({"jsonrpc": "2.0", "id": "status", "method": "status"})
    engine.send({"jsonrpc": "2.0", "id": "cancel", "method": "cancel"})
    train = next_reply(engine, notifications)
    status = next_reply(engine, notifications)
    cancel = next_reply(engine, notifications)

    assert [train["id"], status["id"], cancel["id"]] == ["train", "status", "cancel"]
    if "result" in train:  # a validation had saved a model: it is kept
        assert train["result"]["stopped"] == "cancelled"
    else:  # cancelled before anything was saved
        assert error_of(train) == ("train", 1030)
    assert status["result"]["state"] == "training"  # status describes the moment it was read
    assert status["result"]["training"]["id"] == "train"
    assert cancel["result"] == {"cancelled": ["train"]}
    assert engine.request("status")["result"]["state"] == "idle"
    assert engine.finish() == (0, [])


def test_sigterm_during_training_still_replies_then_exits_zero(engines, ionosphere, tmp_path):
    engine = engines("json")
    engine.request("init", {"notifications": ["log"], "threads": 1})
    params = {"meta": str(ionosphere), "model": str(tmp_path / "m"), "options": {"max_epochs": 10_000}}
    engine.send({"jsonrpc": "2.0", "id": "train", "method": "train", "params": params})
    first = engine.receive()
    assert first["method"] == "log" and set(first["params"]) == {"level", "logger", "message"}
    engine.process.send_signal(signal.SIGTERM)
    train = next_reply(engine, [])
    assert train["id"] == "train"
    assert train.get("result", {}).get("stopped") == "cancelled" or error_of(train) == ("train", 1030)
    assert engine.process.wait(timeout=TIMEOUT) == 0
