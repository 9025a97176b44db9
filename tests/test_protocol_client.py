"""A client written from protocol.md alone: subprocess plus json / msgpack, nothing of lfengine.

One engine process trains and applies a sequence tagger and a classifier, cancels a training,
sends progress notifications no more often than §6.1 allows, and answers every bad input of §1.4
and §7 with exactly one error response before serving the next request as if nothing happened.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from timeouts import scaled

from lfengine import cli

REPO = Path(__file__).resolve().parent.parent
LFDATA = REPO.parent / "shared" / "lfdata"
DEADLINE_SECONDS = scaled(60.0)


class Client:
    """Writes requests to ``lfengine serve`` and reads its messages, each read with a deadline."""

    def __init__(self, fmt: str, *args: str) -> None:
        self.fmt = fmt
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lfengine", "serve", "--max-message-mb", "1", *args],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.notifications: list[dict] = []
        self._lines = b""
        self._unpacker = msgpack.Unpacker(raw=False)
        self._ids = iter(range(1, 1_000_000))

    def send_raw(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict) -> None:
        if self.fmt == "json":
            self.send_raw(json.dumps(message).encode("utf-8") + b"\n")
        else:
            self.send_raw(msgpack.packb(message, use_bin_type=True))

    def request(self, method: str, params: Any = None) -> int:
        request_id = next(self._ids)
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}})
        return request_id

    def message(self) -> dict:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            if self.fmt == "json" and b"\n" in self._lines:
                line, self._lines = self._lines.split(b"\n", 1)
                return json.loads(line)
            if self.fmt == "msgpack":
                for message in self._unpacker:
                    return message
            fd = self.process.stdout.fileno()
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise AssertionError("the engine sent nothing before the deadline")
            data = os.read(fd, 1 << 16)
            assert data, "the engine closed its output"
            if self.fmt == "json":
                self._lines += data
            else:
                self._unpacker.feed(data)

    def response(self) -> dict:
        """The next response; notifications before it are kept in ``notifications``."""
        while "id" not in (message := self.message()):
            self.notifications.append(message)
        return message

    def call(self, method: str, params: Any = None) -> Any:
        request_id = self.request(method, params)
        response = self.response()
        assert response["id"] == request_id and "result" in response, response
        return response["result"]

    def error(self, expected_id: Any = None) -> dict:
        response = self.response()
        assert "result" not in response and response["id"] == expected_id, response
        return response["error"]

    def close(self) -> int:
        if self.process.poll() is None:
            self.call("shutdown")
        self.process.stdin.close()
        return self.process.wait(timeout=DEADLINE_SECONDS)


def lf_instances(name: str, count: int) -> list:
    with open(LFDATA / f"{name}.data.json", encoding="utf-8") as lines:
        return [json.loads(next(lines))[0] for _ in range(count)]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """One JSON engine holding a trained classifier and a trained tagger, by name."""
    if not (LFDATA / "seq-pos2.meta.json").is_file():
        pytest.skip(f"LF reference data not found at {LFDATA}")
    models = tmp_path_factory.mktemp("models")
    client = Client("json")
    client.call("init", {"protocol": "1.0", "threads": 1})
    for name, meta in (("classifier", "class-ionosphere"), ("tagger", "seq-pos2")):
        result = client.call(
            "train",
            {
                "meta": str(LFDATA / f"{meta}.meta.json"),
                "model": str(models / name),
                "name": name,
                "options": {"max_epochs": 1},
            },
        )
        assert result["stopped"] == "max-epochs" and result["name"] == name
    client.models = models
    yield client
    assert client.close() == 0


def test_a_tagger_and_a_classifier_in_one_engine_are_applied_alternately(engine):
    vectors = lf_instances("class-ionosphere", 3)
    sequences = lf_instances("seq-pos2", 2) + [[]]
    first = []
    for _ in range(2):
        classified = engine.call(
            "apply-batch", {"model": "classifier", "instances": vectors, "distribution": True}
        )
        tagged = engine.call("apply-batch", {"model": "tagger", "instances": sequences})
        first.append((classified, tagged))
        labels = classified["labels"]
        assert sorted(labels) == ["b", "g"] and len(classified["predictions"]) == 3
        for prediction in classified["predictions"]:
            assert (
                prediction["label"]
                == labels[prediction["distribution"].index(max(prediction["distribution"]))]
            )
            assert prediction["confidence"] == max(prediction["distribution"])
            assert sum(prediction["distribution"]) == pytest.approx(1.0, abs=1e-5)
        assert [len(p["label"]) for p in tagged["predictions"]] == [len(s) for s in sequences]
        for prediction in tagged["predictions"]:
            assert all(isinstance(label, str) for label in prediction["label"])
            assert all(0.0 <= c <= 1.0 and isinstance(c, float) for c in prediction["confidence"])
    assert first[0] == first[1]  # resident models answer the same way every time
    by_directory = engine.call(
        "apply-batch", {"model": str(engine.models / "tagger"), "instances": sequences}
    )
    assert by_directory == first[0][1]
    status = engine.call("status")
    assert status["state"] == "idle"
    assert sorted((m["name"], m["task"]) for m in status["models"]) == [
        ("classifier", "classification"),
        ("tagger", "sequence"),
    ]


BAD_JSON_LINES = [  # (bytes sent, expected code), each answered with id null
    (b"{oops\n", -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"x":NaN}}\n', -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"\xff"}\n', -32700),
    (b"[1, 2]\n", -32600),
    (b'"status"\n', -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"pad":"' + b"x" * (1 << 20) + b'"}}\n', -32001),
]


@pytest.mark.parametrize(
    ("data", "code"), BAD_JSON_LINES, ids=["json", "nan", "utf8", "array", "string", "size"]
)
def test_a_bad_json_line_gets_one_error_and_the_engine_keeps_serving(engine, data, code):
    engine.send_raw(data)
    assert engine.error(None)["code"] == code
    assert engine.call(
        "apply-batch", {"model": "classifier", "instances": lf_instances("class-ionosphere", 1)}
    )


BAD_REQUESTS = [  # (method, params, expected code, expected error data members)
    ("predict", {}, -32601, {"method": "predict"}),
    ("apply-batch", {"model": "classifier"}, -32602, {"param": "instances"}),
    ("apply-batch", {"model": "classifier", "instances": "none"}, -32602, {"param": "instances"}),
    ("apply-batch", {"model": ["classifier"], "instances": []}, -32602, {"param": "model"}),
    ("apply-batch", ["classifier", []], -32602, {}),
    ("apply-batch", {"model": "no-such-model", "instances": []}, 1021, {"model": "no-such-model"}),
    ("apply-batch", {"model": "classifier", "instances": [[0.5] * 34, [0.5] * 33]}, 1002, {"index": 1}),
    (
        "apply-batch",
        {"model": "classifier", "instances": [[0.5] * 30 + ["x"] + [0.5] * 3]},
        1002,
        {"index": 0, "feature": "\u2506a31\u256cA"},
    ),
    ("apply-batch", {"model": "tagger", "instances": [[["a"]], [["a"], ["b", "c"]]]}, 1002, {"index": 1}),
    (
        "apply-batch",
        {"model": "tagger", "instances": [[["a"], [7]]]},
        1002,
        {"index": 0, "feature": "Token\u2506string_lc\u256cA"},
    ),
    (
        "train",
        {
            "meta": str(LFDATA / "class-ionosphere.meta.json"),
            "model": "/nonexistent/m",
            "options": {"epochs": 3},
        },
        1010,
        {},
    ),
    ("describe", {}, -32602, {}),
]


@pytest.mark.parametrize(
    ("method", "params", "code", "data"), BAD_REQUESTS, ids=lambda v: v if isinstance(v, (str, int)) else None
)
def test_a_bad_request_gets_one_error_with_its_id_and_the_engine_keeps_serving(
    engine, method, params, code, data
):
    request_id = next(engine._ids)
    engine.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    error = engine.error(request_id)
    assert error["code"] == code, error
    assert data.items() <= error["data"].items()
    assert isinstance(error["message"], str) and error["message"]
    assert engine.call("status")["state"] == "idle"


def test_cancel_stops_a_running_training_and_one_waiting_and_responses_keep_request_order(engine):
    engine.call("init", {"notifications": ["progress"]})
    meta = str(LFDATA / "class-window-pos1.meta.json")
    running_dir = str(engine.models / "cancelled")
    running = engine.request(
        "train", {"meta": meta, "model": running_dir, "options": {"max_epochs": 1000, "batch_size": 1}}
    )
    first = engine.message()  # the first progress report goes out at once (§6.1)
    assert first["method"] == "progress" and first["params"]["id"] == running
    waiting = engine.request("train", {"meta": meta, "model": str(engine.models / "never")})
    status_id = engine.request("status")
    cancel_id = engine.request("cancel")
    responses = [engine.response() for _ in range(4)]
    assert [r["id"] for r in responses] == [running, waiting, status_id, cancel_id]
    stopped, never, status, cancel = responses
    # 900 batches of one instance per epoch: no validation runs before the cancel (§5.7)
    assert stopped["result"]["stopped"] == "cancelled" and stopped["result"]["best_epoch"] == 0
    assert never["error"]["code"] == 1030
    assert status["result"]["state"] == "training" and status["result"]["training"]["id"] == running
    assert cancel["result"] == {"cancelled": [running, waiting]}
    engine.call("init", {"notifications": []})
    assert engine.call("status")["state"] == "idle"
    # the cancelled training kept its model as it was when it stopped
    applied = engine.call(
        "apply-batch", {"model": running_dir, "instances": lf_instances("class-window-pos1", 2)}
    )
    assert len(applied["predictions"]) == 2
    assert not (engine.models / "never").exists()


def test_progress_notifications_come_at_most_every_half_second_plus_milestones(engine):
    engine.call("init", {"notifications": ["progress"]})
    engine.notifications.clear()
    result = engine.call(
        "train",
        {
            "meta": str(LFDATA / "class-ionosphere.meta.json"),
            "model": str(engine.models / "throttled"),
            "options": {"max_epochs": 2, "batch_size": 1},
        },
    )
    engine.call("init", {"notifications": []})
    reports = [n["params"]["progress"] for n in engine.notifications if n["method"] == "progress"]
    batches = reports[0]["batches"]
    assert result["epochs"] == 2 and batches == 316  # 316 training instances, one per batch
    ends = [(r["epoch"], bool(r["metrics"])) for r in reports if r["batch"] == batches]
    assert ends == [(1, False), (1, True), (2, False), (2, True)]  # every epoch end, every validation
    plain = [r["elapsed"] for r in reports if r["batch"] < batches]
    assert plain[0] == reports[0]["elapsed"]
    assert all(b - a >= 0.45 for a, b in zip(plain, plain[1:])), plain
    assert len(reports) <= 4 + 1 + reports[-1]["elapsed"] / 0.5


def test_bad_msgpack_input_gets_one_error_each_and_the_engine_keeps_serving(engine):
    client = Client("msgpack")
    try:
        model = str(engine.models / "classifier")
        apply = {"model": model, "instances": lf_instances("class-ionosphere", 1)}
        for data, code in [
            (b"\xc1", -32700),  # the reserved byte
            (msgpack.packb([1, 2]), -32600),  # an array: a batch, refused whole
            (b"\x81\xa1a\xa1\xff", -32700),  # a str that is not UTF-8
            (b"\x81\x01\x02", -32700),  # a key that is not a string
            (msgpack.packb({"jsonrpc": "2.0", "id": 1, "method": "status", "x": "y" * (1 << 20)}), -32001),
            (msgpack.packb({"jsonrpc": "1.0", "id": None, "method": "status"}), -32600),
        ]:
            client.send_raw(data)
            assert client.error(None)["code"] == code
            assert client.call("apply-batch", apply)["predictions"][0]["label"] in ("g", "b")
        request_id = client.request("apply-batch", {"model": model, "instances": [[0.5] * 35]})
        assert client.error(request_id)["data"]["index"] == 0
        assert client.call("init", {})["format"] == "msgpack"
    finally:
        assert client.close() == 0


def test_evaluate_replies_with_the_confusion_matrix_the_command_line_prints(engine, capsys):
    data = str(LFDATA / "seq-pos2.data.json")
    report = engine.call("evaluate", {"model": "tagger", "data": data})
    confusion = report["confusion"]
    labels, matrix = confusion["labels"], confusion["matrix"]
    assert set(labels) == set(report["per_label"]) and len(matrix) == len(labels)
    assert all(len(row) == len(labels) for row in matrix)
    assert sum(map(sum, matrix)) == report["instances"]  # every token of seq-pos2 counted once
    for i, label in enumerate(labels):
        assert sum(matrix[i]) == report["per_label"][label]["support"]
        assert sum(row[i] for row in matrix) == report["per_label"][label]["predicted"]
    assert sum(matrix[i][i] for i in range(len(labels))) == round(report["accuracy"] * report["instances"])
    capsys.readouterr()
    assert cli.main(["evaluate", str(engine.models / "tagger"), data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["confusion"] == confusion  # one computation, two fronts


def test_command_line_apply_puts_each_token_of_real_data_beside_the_protocols_label(engine, capsys):
    data = LFDATA / "seq-pos2.data.json"
    records = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    capsys.readouterr()
    assert cli.main(["apply", str(engine.models / "tagger"), str(data), "--labeled"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["tokens"] for line in lines] == [[element[0] for element in seq] for seq, _ in records]
    assert lines[0]["tokens"][:3] == ["horse", "racing", "-"]  # Token string_lc, the export's A column
    tagged = engine.call("apply-batch", {"model": "tagger", "instances": [seq for seq, _ in records[:5]]})
    assert [line["label"] for line in lines[:5]] == [p["label"] for p in tagged["predictions"]]
