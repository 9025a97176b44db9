"""Untrusted input (issue 8): a model directory is data, paths name regular files, numbers are
in range, and every client mistake is a typed error before any work starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from timeouts import scaled

from lfengine import service
from lfengine.data.synthetic import write_classification_corpus
from lfengine.errors import DataLineError, MetaFileError, ModelError, OptionError
from lfengine.options import TrainOptions
from lfengine.settings import MAX_THREADS
from lfengine.storage import store

REPO = Path(__file__).resolve().parent.parent

EVIL_MODULE = """\
import pathlib
pathlib.Path({marker!r}).write_text("the model directory ran code")
from lfengine.builder.networks import Classifier


class Evil(Classifier):
    pass
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(meta file, model directory) of a small classifier."""
    root = tmp_path_factory.mktemp("trained")
    meta = write_classification_corpus(root, 120, seed=3)
    service.train(str(meta), str(root / "model"), TrainOptions(max_epochs=1, threads=1))
    return meta, root / "model"


@pytest.fixture
def booby_trapped(trained, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the model whose model.json names a user module that writes a marker when imported
    (the weights' digest does not cover model.json). Returns (model directory, marker)."""
    marker = tmp_path / "MARKER"
    module = tmp_path / "evil.py"
    module.write_text(EVIL_MODULE.format(marker=str(marker)), encoding="utf-8")
    model_dir = tmp_path / "copied-model"
    shutil.copytree(trained[1], model_dir)
    document = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    document["metadata"]["config"]["module"] = f"{module}:Evil"
    document["metadata"]["training"]["options"]["module"] = f"{module}:Evil"
    (model_dir / "model.json").write_text(json.dumps(document), encoding="utf-8")
    return model_dir, marker


def _planted(trained, tmp_path: Path, options: dict) -> tuple[Path, Path, str]:
    """A copy of the model (checkpoint included) whose stored training options are updated with
    ``options`` (each naming MODULE, replaced by a module file that writes a marker when
    imported). Returns (model directory, marker, module name)."""
    marker = tmp_path / "MARKER"
    module = tmp_path / "evil.py"
    module.write_text(EVIL_MODULE.format(marker=str(marker)), encoding="utf-8")
    name = f"{module}:Evil"
    model_dir = tmp_path / "planted-model"
    shutil.copytree(trained[1], model_dir)
    document = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    planted = json.loads(json.dumps(options).replace("MODULE", name))
    document["metadata"]["training"]["options"].update(planted)
    (model_dir / "model.json").write_text(json.dumps(document), encoding="utf-8")
    return model_dir, marker, name


def _instance(meta: Path) -> list:
    line = meta.with_name(meta.name.replace(".meta.", ".data.")).read_text(encoding="utf-8").splitlines()[0]
    return json.loads(line)[0]


# --- 1. a model directory never runs code unless the caller allows it ---------------------------
def test_loading_a_model_that_names_a_module_is_refused_unless_trusted(booby_trapped, trained):
    model_dir, marker = booby_trapped
    with pytest.raises(ModelError, match="trust_module") as refused:
        service.load_model(str(model_dir))
    assert "would import (execute) that file" in refused.value.message
    assert not marker.exists()
    model = service.load_model(str(model_dir), trust_module=True)
    assert marker.exists()
    assert len(model.apply([_instance(trained[0])])) == 1


def test_resume_of_such_a_model_is_refused_unless_trusted(booby_trapped, trained, tmp_path):
    model_dir, marker = booby_trapped
    assert store.checkpoint_reference(model_dir) is not None  # copied with the model: resume reads it
    with pytest.raises(ModelError, match="trust_module"):
        service.train(str(trained[0]), str(model_dir), TrainOptions(resume=True, max_epochs=2, threads=1))
    assert not marker.exists()


# Issue 19: the module named by a model's stored options, through every route that reads them.
RESUME = {"model": {"module": "MODULE"}}  # the settings' module: not the "module" option
CONFIG = {"module": "MODULE"}


@pytest.mark.parametrize(
    ("route", "planted"),
    [
        ("train --resume", RESUME),
        ("train --config", CONFIG),
        ("describe --config", CONFIG),
        ("eject --config", CONFIG),
        ("train.sh --resume", RESUME),
    ],
)
def test_no_route_imports_a_module_that_a_model_directory_names(
    trained, tmp_path, capsys, caplog, route, planted
):
    from lfengine import cli
    from lfengine.gate import gate_train_main

    meta = str(trained[0])
    model_dir, marker, name = _planted(trained, tmp_path, planted)
    new, threads = str(tmp_path / "new"), ["--threads", "1"]
    argv = {
        "train --resume": ["train", meta, str(model_dir), "--resume", "--max-epochs", "2", *threads],
        "train --config": ["train", meta, new, "--config", str(model_dir), *threads],
        "describe --config": ["describe", meta, "--config", str(model_dir)],
        "eject --config": ["eject", meta, "--config", str(model_dir), "-o", str(tmp_path / "out.py")],
    }
    if route == "train.sh --resume":
        prefix = tmp_path / "FileJsonPyTorch.model"
        model_dir.rename(str(prefix) + ".d")
        assert gate_train_main([meta, str(prefix), "--resume", "--maxepochs", "2"]) != 0
    else:
        assert cli.main(argv[route]) == 1
    assert not marker.exists()
    said = capsys.readouterr().err + caplog.text  # the command line logs, train.sh prints
    assert name in said
    assert ("eject writes out the auto-built networks" if route.startswith("eject") else "trust") in said
    if route in ("train --config", "describe --config"):  # naming the module yourself allows it
        assert cli.main([*argv[route], "--module", name, "--max-epochs", "1"]) == 0
        assert marker.exists()


def test_protocol_resume_refuses_a_module_the_stored_options_name(trained, tmp_path, engines):
    model_dir, marker, _ = _planted(trained, tmp_path, RESUME)
    engine = engines("json")
    options = {"resume": True, "max_epochs": 2, "threads": 1}
    reply = engine.request("train", {"meta": str(trained[0]), "model": str(model_dir), "options": options})
    assert reply["error"]["code"] == 1020 and reply["error"]["data"]["type"] == "UntrustedModuleError", reply
    assert not marker.exists()
    assert engine.request("status", {})["result"]["state"] == "idle"  # still serving
    assert engine.finish()[0] == 0


@pytest.mark.parametrize("command", ["apply", "evaluate", "describe"])
def test_the_command_line_refuses_it_too_and_says_how_to_allow_it(booby_trapped, trained, command):
    model_dir, marker = booby_trapped
    data = str(trained[0]).replace(".meta.", ".data.")
    args = {
        "apply": [str(model_dir), data, "--labeled"],
        "evaluate": [str(model_dir), data],
        "describe": [str(model_dir)],
    }
    run = [sys.executable, "-m", "lfengine", command, *args[command]]
    refused = subprocess.run(run, cwd=REPO, capture_output=True, timeout=scaled(120))
    assert refused.returncode == 1 and b"--trust-module" in refused.stderr and refused.stdout == b""
    assert not marker.exists()
    allowed = subprocess.run([*run, "--trust-module"], cwd=REPO, capture_output=True, timeout=scaled(120))
    assert allowed.returncode == 0, allowed.stderr
    assert marker.exists()


def test_the_protocol_refuses_it_until_the_request_says_trust_module(booby_trapped, trained, engines):
    model_dir, marker = booby_trapped
    engine = engines("json")
    instance = _instance(trained[0])
    for method, params in (
        ("init", {"models": {"m": str(model_dir)}}),
        ("apply-batch", {"model": str(model_dir), "instances": [instance]}),
        ("describe", {"model": str(model_dir)}),
        ("evaluate", {"model": str(model_dir), "data": str(trained[0]).replace(".meta.", ".data.")}),
    ):
        reply = engine.request(method, params)
        assert reply["error"]["code"] == 1020 and "trust_module" in reply["error"]["message"], reply
        assert not marker.exists()
    reply = engine.request(
        "apply-batch", {"model": str(model_dir), "instances": [instance], "trust_module": True}
    )
    assert len(reply["result"]["predictions"]) == 1 and marker.exists()
    assert engine.finish()[0] == 0


def test_gate_apply_refuses_it_without_trust_module(booby_trapped, tmp_path):
    model_dir, marker = booby_trapped
    prefix = tmp_path / "FileJsonPyTorch.model"
    shutil.copytree(model_dir, str(prefix) + ".d")
    code = "import sys; from lfengine.gate import gate_apply_main; sys.exit(gate_apply_main(sys.argv[1:]))"
    for extra, ok in (([], False), (["--trust_module"], True)):
        result = subprocess.run(
            [sys.executable, "-c", code, str(prefix), *extra],
            cwd=REPO,
            input=b"",
            capture_output=True,
            timeout=scaled(120),
        )
        assert (b"trust_module" in result.stderr) != ok, result.stderr
        assert marker.exists() == ok


# --- 2. paths name regular files ----------------------------------------------------------------
def _fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "t.meta.json"
    os.mkfifo(fifo)
    return fifo


def _returns_promptly(call) -> BaseException:
    """Run ``call`` (which must raise) in a thread; a blocked or endless read fails the test."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(scaled(10))
    assert not worker.is_alive(), "the read blocked or ran on (a device or FIFO was read)"
    assert outcome, "no error was raised"
    return outcome[0]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_devices_are_refused_at_once_for_every_path(trained, tmp_path):
    meta, model_dir = trained
    model = service.load_model(str(model_dir))
    error = _returns_promptly(lambda: service.describe("/dev/zero", TrainOptions()))
    assert isinstance(error, MetaFileError) and "a device where a regular file is needed" in error.message
    assert isinstance(_returns_promptly(lambda: model.evaluate("/dev/zero")), DataLineError)
    valfile = _returns_promptly(
        lambda: service.train(str(meta), str(tmp_path / "m"), TrainOptions(valfile="/dev/zero"))
    )
    assert isinstance(valfile, DataLineError) and not (tmp_path / "m").exists()
    (tmp_path / "zero.data.json").symlink_to("/dev/zero")
    (tmp_path / "zero.meta.json").write_bytes(meta.read_bytes())
    data = _returns_promptly(
        lambda: service.train(str(tmp_path / "zero.meta.json"), str(tmp_path / "z"), TrainOptions())
    )
    assert isinstance(data, DataLineError)
    broken = tmp_path / "broken-model"
    shutil.copytree(model_dir, broken)
    (broken / "model.json").unlink()
    (broken / "model.json").symlink_to("/dev/zero")
    assert isinstance(_returns_promptly(lambda: service.load_model(str(broken))), ModelError)


def test_fifos_are_refused_without_waiting_for_a_writer(trained, tmp_path):
    fifo = _fifo(tmp_path)
    error = _returns_promptly(lambda: service.describe(str(fifo), TrainOptions()))
    assert isinstance(error, MetaFileError) and "FIFO" in error.message
    model = service.load_model(str(trained[1]))
    assert isinstance(_returns_promptly(lambda: model.evaluate(str(fifo))), DataLineError)


def test_a_meta_file_over_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    from lfengine.data import meta as meta_module

    monkeypatch.setattr(meta_module, "MAX_META_BYTES", 100)
    big = tmp_path / "big.meta.json"
    big.write_text(json.dumps({"padding": "x" * 200}), encoding="utf-8")
    with pytest.raises(MetaFileError, match="over the limit of 100 bytes"):
        meta_module.read_meta(big)


# --- 3. numbers in range, threads scoped ---------------------------------------------------------
@pytest.mark.parametrize(
    "values",
    [
        {"threads": MAX_THREADS + 1},
        {"threads": 2**31},
        {"threads": 0},
        {"batch_size": 2**31},
        {"max_epochs": 10**400},
        {"seed": -1},
        {"es_patience": -1},
        {"validate_every_batches": 0},
        {"learning_rate": 10**400},
        {"learning_rate": float("inf")},
        {"valsize": float("nan")},
        {"valsize": 1e300},
        {"device": "cuda:x"},
        {"model": {"hidden_size": 10**9}},
        {"model": {"cnn_kernels": [3, 1000]}},
        {"model": {"hidden_layers": 64, "hidden_size": 16384}},  # each in range, together 17e9 weights
        {"model": {"dropout": float("nan")}},
        {"embs": ":1000000000:yes"},
    ],
)
def test_numbers_out_of_range_are_option_errors_before_any_work(trained, values, tmp_path):
    with pytest.raises(OptionError):
        service.describe(str(trained[0]), TrainOptions.from_dict(values))
    assert not (tmp_path / "m").exists()


def test_a_training_restores_the_torch_threads_it_changed(trained, tmp_path):
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        service.train(str(trained[0]), str(tmp_path / "m"), TrainOptions(max_epochs=1, threads=1))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


# --- 4. client mistakes are typed errors ---------------------------------------------------------
@pytest.mark.parametrize("path", ["a\x00b.meta.json", "a\ud800b.meta.json"])
def test_unusable_characters_in_paths_are_typed_errors_on_every_parameter(trained, path, tmp_path, engines):
    meta, model_dir = trained
    engine = engines("json")
    data = str(meta).replace(".meta.", ".data.")
    expected = [
        ("describe", {"meta": path}, 1001),
        ("train", {"meta": path, "model": str(tmp_path / "m")}, 1001),
        ("train", {"meta": str(meta), "model": path}, 1010),
        ("train", {"meta": str(meta), "model": str(tmp_path / "m"), "options": {"valfile": path}}, 1010),
        ("train", {"meta": str(meta), "model": str(tmp_path / "m"), "options": {"stop_file": path}}, 1010),
        ("apply-batch", {"model": path, "instances": []}, 1021),
        ("evaluate", {"model": path, "data": data}, 1021),
        ("evaluate", {"model": str(model_dir), "data": path}, 1002),
        ("describe", {"model": path}, 1021),
        ("init", {"models": {"m": path}}, 1020),
    ]
    for method, params, code in expected:
        reply = engine.request(method, params)
        assert reply.get("error", {}).get("code") == code, (method, params, reply)
    assert not (tmp_path / "m").exists()
    assert engine.finish()[0] == 0


def test_a_huge_integer_feature_value_is_a_data_error(trained, engines):
    meta, model_dir = trained
    engine = engines("json")
    instance = _instance(meta)
    numeric = next(
        i for i, v in enumerate(instance) if isinstance(v, (int, float)) and not isinstance(v, bool)
    )
    instance[numeric] = 10**400
    reply = engine.request("apply-batch", {"model": str(model_dir), "instances": [instance]})
    assert reply["error"]["code"] == 1002 and reply["error"]["data"]["index"] == 0, reply
    assert "number out of range" in reply["error"]["message"]
    assert engine.finish()[0] == 0


def test_train_into_an_existing_file_fails_before_training(trained, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("mine", encoding="utf-8")
    progress: list[dict] = []
    with pytest.raises(OptionError, match="is an existing file"):
        service.train(str(trained[0]), str(target), TrainOptions(max_epochs=1), on_progress=progress.append)
    assert progress == [] and target.read_text(encoding="utf-8") == "mine"


# --- 5. no garbage predictions -------------------------------------------------------------------
def test_values_that_overflow_once_standardised_are_data_errors_not_null_confidences(trained):
    meta, model_dir = trained
    model = service.load_model(str(model_dir))
    instance = _instance(meta)
    huge = [1e308 if isinstance(v, float) else v for v in instance]
    assert huge != instance
    with pytest.raises(DataLineError, match="number out of range") as error:
        model.apply([instance, huge])
    assert error.value.index == 1


# --- 7, 8. envelope rules hold for every method and framing ---------------------------------------
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_positional_params_are_refused_by_status_and_shutdown_too(engines, fmt):
    engine = engines(fmt)
    for method in ("status", "shutdown", "cancel"):
        reply = engine.request(method, [1])
        assert reply["error"]["code"] == -32602 and reply["error"]["data"]["param"] == "params", reply
    assert engine.request("status")["result"]["state"] == "idle"  # the shutdown did not happen
    assert engine.finish()[0] == 0


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_a_batch_array_is_refused_and_nothing_in_it_runs(engines, fmt):
    engine = engines(fmt)
    engine.send([{"jsonrpc": "2.0", "id": 7, "method": "shutdown"}])
    reply = engine.receive()
    assert reply["id"] is None and reply["error"]["code"] == -32600, reply
    assert engine.request("status")["result"]["state"] == "idle"
    code, rest = engine.finish()
    assert code == 0 and rest == []


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_the_gate_paths_and_a_foreign_model_json_are_refused_at_once(trained, tmp_path):
    from lfengine.gate.cmdline import read_config_file
    from lfengine.gate.commands import _check_meta
    from lfengine.storage import store

    assert isinstance(_returns_promptly(lambda: read_config_file("/dev/zero", {})), OptionError)
    model = service.load_model(str(trained[1]))
    _returns_promptly(lambda: (_check_meta("/dev/zero", model), _raise()))  # only warns, at once
    fifo_dir = tmp_path / "m"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "model.json")
    refused = _returns_promptly(lambda: store.refuse_foreign_model_json(fifo_dir / "model.json"))
    assert isinstance(refused, ModelError)


def _raise() -> None:
    raise RuntimeError("returned")


def test_a_diverging_training_is_an_option_error_naming_the_learning_rate(trained, tmp_path):
    with pytest.raises(OptionError, match="diverged with learning_rate 1e\\+30"):
        service.train(
            str(trained[0]), str(tmp_path / "m"), TrainOptions(learning_rate=1e30, max_epochs=3, threads=1)
        )


def test_a_stop_file_that_is_a_directory_is_refused_before_training(trained, tmp_path):
    with pytest.raises(OptionError, match="stop_file .* is not a regular file"):
        service.train(str(trained[0]), str(tmp_path / "m"), TrainOptions(stop_file=str(tmp_path)))
    assert not (tmp_path / "m").exists()


# --- issue 19 item 10: integers longer than Python reads are malformed JSON, located ------------
HUGE = "9" * 5000


@pytest.mark.parametrize("command", ["evaluate", "apply"])
def test_a_huge_integer_in_a_data_file_is_a_data_error_naming_the_line(
    trained, tmp_path, capsys, caplog, command
):
    from lfengine import cli

    meta, model_dir = trained
    good = json.dumps([_instance(meta), "x"] if command == "evaluate" else _instance(meta))
    data = tmp_path / "huge.data.json"
    data.write_text(f'{good}\n[[["a"], {HUGE}, true], "x"]\n', encoding="utf-8")
    assert cli.main([command, str(model_dir), str(data)]) == 1
    said = capsys.readouterr().err + caplog.text
    assert f"{data}:2: line is not valid JSON: found an integer of 5000 digits" in said
    assert "Traceback" not in said and "set_int_max_str_digits" not in said


def test_a_huge_integer_in_a_meta_file_is_a_meta_file_error(trained, tmp_path):
    text = trained[0].read_text(encoding="utf-8")
    meta = tmp_path / "huge.meta.json"
    meta.write_text(text.replace("{", '{"x": ' + HUGE + ", ", 1), encoding="utf-8")
    with pytest.raises(MetaFileError, match="integer of 5000 digits"):
        service.describe(str(meta), TrainOptions())


def test_apply_sh_answers_a_request_with_a_huge_integer_and_goes_on(trained, tmp_path):
    meta, model_dir = trained
    prefix = tmp_path / "FileJsonPyTorch.model"
    shutil.copytree(model_dir, str(prefix) + ".d")
    good = json.dumps(_instance(meta))
    code = "import sys; from lfengine.gate import gate_apply_main; sys.exit(gate_apply_main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", code, str(prefix)],
        cwd=REPO,
        input=f'[["a"], {HUGE}, true]\n{good}\n'.encode(),
        capture_output=True,
        timeout=scaled(120),
    )
    replies = result.stdout.decode().splitlines()
    assert result.returncode == 0 and len(replies) == 2, result.stderr
    assert "integer of 5000 digits" in replies[0] and "Traceback" not in result.stderr.decode()
    assert "status" not in json.loads(replies[1]) or json.loads(replies[1])["status"] == "ok", replies[1]


def test_the_protocol_says_where_a_huge_integer_is_and_keeps_serving(engines):
    engine = engines("json")
    engine.send_raw(
        ('{"jsonrpc": "2.0", "id": 7, "method": "status", "params": {"x": ' + HUGE + "}}\n").encode()
    )
    reply = engine.receive()
    assert reply["error"]["code"] == -32700 and "integer of 5000 digits" in reply["error"]["message"], reply
    assert engine.request("status", {})["result"]["state"] == "idle"
    assert engine.finish()[0] == 0
