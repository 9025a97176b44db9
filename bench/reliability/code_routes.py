"""Code execution (issue 19 items 1 and 2): no route runs a file or a string that a model
directory, a meta file or a data file names, against the real command line, train.sh/apply.sh
and the real server.

Module routes: a copy of a trained model whose model.json names a planted module file (in the
stored training options, as ``module`` or as the settings' ``module``, or in the config); the
file writes a marker when imported. Each route must refuse with its typed error (exit 1, or a
1020 reply), write no marker and print no traceback. Eject: labels, column names, emb_ids, the
character column, the model directory's name and the meta file named in model.json all carry a
payload that closes the literal, comment or docstring it lands in; the ejected file must import
without running it and keep every string exactly.

Outcomes (tally.py): a payload that ran (an import of the planted file, or ejected code) counts
as ``lost``; ``imports`` and ``payload_runs`` are counted apart for the summary.
"""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.reliability.engine import REPO, TRACEBACK, Engine, engine_env
from bench.reliability.tally import Tally

EVIL = """\
import pathlib
pathlib.Path({marker!r}).write_text("imported")
from lfengine.builder.networks import Classifier


class Evil(Classifier):
    pass
"""
GATE = "import sys; from lfengine.gate import {main}; sys.exit({main}(sys.argv[1:]))"
TIMEOUT = 240


def base_model(workdir: Path) -> tuple[Path, Path]:
    """(meta, model directory) of a small classifier trained for one epoch (with a checkpoint)."""
    from lfengine import service
    from lfengine.data.synthetic import write_classification_corpus
    from lfengine.options import TrainOptions

    meta = write_classification_corpus(workdir / "data", 80, seed=3)
    model = workdir / "base-model"
    service.train(str(meta), str(model), TrainOptions(max_epochs=1, threads=1))
    return meta, model


def plant(base: Path, case_dir: Path, where: str) -> tuple[Path, Path, str]:
    """A copy of ``base`` naming a module file that writes a marker, in ``where``: "options"
    (training.options.module), "settings" (training.options.model.module) or "config" (the
    stored config and options, as a model trained with it)."""
    marker = case_dir / "MARKER"
    module = case_dir / "evil.py"
    module.write_text(EVIL.format(marker=str(marker)), encoding="utf-8")
    name = f"{module}:Evil"
    model = case_dir / "model"
    shutil.copytree(base, model)
    document = json.loads((model / "model.json").read_text(encoding="utf-8"))
    options = document["metadata"]["training"]["options"]
    if where == "settings":
        options["model"] = {**options.get("model", {}), "module": name}
    else:
        options["module"] = name
    if where == "config":
        document["metadata"]["config"]["module"] = name
    (model / "model.json").write_text(json.dumps(document), encoding="utf-8")
    return model, marker, name


#: route -> (where the module is planted, the command's words); each must exit non-zero with
#: its typed refusal. {py}: python -m lfengine; {gate_train}/{gate_apply}: train.sh/apply.sh.
CLI_ROUTES = {
    "train --resume (settings module)": ("settings", "{py} train {meta} {model} --resume {quick}"),
    "train --resume (module option)": ("options", "{py} train {meta} {model} --resume {quick}"),
    "train --config MODEL_DIR (module option)": (
        "options",
        "{py} train {meta} {new} --config {model} {quick}",
    ),
    "train --config MODEL_DIR (settings)": ("settings", "{py} train {meta} {new} --config {model} {quick}"),
    "train --config model.json": ("options", "{py} train {meta} {new} --config {model}/model.json {quick}"),
    "describe META --config MODEL_DIR": ("options", "{py} describe {meta} --config {model}"),
    "eject META --config MODEL_DIR": ("options", "{py} eject {meta} --config {model} -o {case}/out.py"),
    "apply MODEL_DIR": ("config", "{py} apply {model} {data} --labeled"),
    "evaluate MODEL_DIR": ("config", "{py} evaluate {model} {data}"),
    "describe MODEL_DIR": ("config", "{py} describe {model}"),
    "train.sh --resume (settings module)": (
        "settings",
        "{gate_train} {meta} {prefix} --resume --maxepochs 2",
    ),
    "apply.sh MODELPREFIX": ("config", "{gate_apply} {prefix}"),
}


def cli_argv(words: str, meta: Path, model: Path, case: Path) -> list[str]:
    """The words of a route with its paths filled in (no path here holds a space)."""
    fill = {
        "py": f"{sys.executable} -m lfengine",
        "gate_train": f"{sys.executable} -c GATE_TRAIN",
        "gate_apply": f"{sys.executable} -c GATE_APPLY",
        "quick": "--max-epochs 2 --threads 1",
        "meta": str(meta),
        "data": str(meta).replace(".meta.", ".data."),
        "model": str(model),
        "new": str(case / "new"),
        "case": str(case),
        "prefix": str(_prefix(model)) if "{prefix}" in words else "",
    }
    argv = words.format(**fill).split()
    code = {
        "GATE_TRAIN": GATE.format(main="gate_train_main"),
        "GATE_APPLY": GATE.format(main="gate_apply_main"),
    }
    return [code.get(word, word) for word in argv]


def _prefix(model: Path) -> Path:
    """train.sh / apply.sh name the model by a prefix: the directory is PREFIX.d."""
    prefix = model.parent / "FileJsonPyTorch.model"
    target = Path(str(prefix) + ".d")
    if not target.exists():
        shutil.copytree(model, target)
    return prefix


def run_command(argv: list[str], cwd: Path, tally: Tally, case: str) -> subprocess.CompletedProcess | None:
    """Run one case's command with empty stdin; None (counted as a hang) past TIMEOUT."""
    try:
        return subprocess.run(
            argv, cwd=cwd, env=engine_env(), input=b"", capture_output=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        tally.add("hang", case, f"no exit within {TIMEOUT} s")
        return None


def run_module_routes(workdir: Path, meta: Path, base: Path) -> Tally:
    tally = Tally("code execution: planted module routes")
    started = time.monotonic()
    imports = 0
    for i, (route, (where, words)) in enumerate(CLI_ROUTES.items()):
        case = workdir / f"cli-{i}"
        case.mkdir(parents=True)
        model, marker, _ = plant(base, case, where)
        run = run_command(cli_argv(words, meta, model, case), case, tally, route)
        if run is None:
            continue
        err = run.stderr.decode("utf-8", "replace")
        imports += marker.exists()
        # apply.sh answers every request (none here) and reports the load failure as its status
        refused = run.returncode != 0 and ("trust" in err or "eject writes out" in err)
        if marker.exists():
            tally.add("lost", route, f"the planted module was imported (exit {run.returncode})")
        elif TRACEBACK in err:
            tally.add("traceback", route, err[-1500:])
        elif not refused:
            tally.add("crash", route, f"exit {run.returncode}, no typed refusal: {err[-800:]}")
        else:
            tally.add("handled")
    imports += _protocol_routes(workdir / "protocol", meta, base, tally)
    tally.seconds = time.monotonic() - started
    tally.category += f" ({imports} imports)"
    return tally


def _protocol_routes(workdir: Path, meta: Path, base: Path, tally: Tally) -> int:
    """The same plants through one ``lfengine serve``: each request gets 1020 and the engine
    goes on serving (status answered after every case)."""
    data = str(meta).replace(".meta.", ".data.")
    instance = json.loads(Path(data).read_text(encoding="utf-8").splitlines()[0])[0]
    workdir.mkdir(parents=True)
    engine = Engine("json", workdir)
    imports = 0
    try:
        cases = [
            ("protocol train resume (settings module)", "settings", "train", "resume"),
            ("protocol train resume (module option)", "options", "train", "resume"),
            ("protocol init models", "config", "init", None),
            ("protocol apply-batch", "config", "apply-batch", None),
            ("protocol describe model", "config", "describe", None),
            ("protocol evaluate", "config", "evaluate", None),
        ]
        for i, (route, where, method, _) in enumerate(cases):
            case = workdir / f"case-{i}"
            case.mkdir()
            model, marker, _ = plant(base, case, where)
            resume = {"resume": True, "max_epochs": 2, "threads": 1}
            params = {
                "train": {"meta": str(meta), "model": str(model), "options": resume},
                "init": {"models": {"m": str(model)}},
                "apply-batch": {"model": str(model), "instances": [instance]},
                "describe": {"model": str(model)},
                "evaluate": {"model": str(model), "data": data},
            }[method]  # fmt: skip
            reply = engine.request({"jsonrpc": "2.0", "id": i, "method": method, "params": params}, TIMEOUT)
            status = engine.request({"jsonrpc": "2.0", "id": 1000 + i, "method": "status"}, 60)
            imports += marker.exists()
            code = reply.get("error", {}).get("code") if isinstance(reply, dict) else None
            if marker.exists():
                tally.add("lost", route, "the planted module was imported")
            elif engine.tracebacks:
                tally.add("traceback", route, engine.stderr_tail())
                engine.tracebacks.clear()
            elif reply is None or not isinstance(status, dict) or "result" not in status:
                tally.add("hang", route, f"reply {reply!r:.300}, status {status!r:.300}")
            elif code != 1020:
                tally.add("crash", route, f"expected a 1020 refusal, got {reply!r:.500}")
            else:
                tally.add("handled")
    finally:
        engine.close(60)
        engine.kill()
    return imports


# --- eject -------------------------------------------------------------------------------------
def payloads(marker: Path) -> list[str]:
    """Each closes the kind of literal, comment or docstring it lands in and runs code."""
    run = f"__import__('pathlib').Path({str(marker)!r}).write_text('ran')"
    return [
        f'"""+{run}+"""',  # valid Python in the old docstring: ran at import
        f"''';{run};z=('''",
        f'""";{run};z=("""',
        f"x\n{run}\n#",
        f"y\r{run}\r\\",
        f"z\u2028\x85\x1b[31m{run}\u202e",
        f"\\N{{{run}",
    ]


def run_eject_strings(workdir: Path, seed: int) -> Tally:
    """Every payload in every place eject writes a string, from the meta file and from the model."""
    from lfengine import service
    from lfengine.data.synthetic import LfAttribute, write_lf
    from lfengine.options import TrainOptions

    tally = Tally("code execution: eject strings")
    started = time.monotonic()
    runs = 0
    rng = random.Random(seed)
    marker = workdir / "MARKER"
    bad = payloads(marker)
    for i, payload in enumerate(bad):
        case = workdir / f"eject-{i}"
        case.mkdir(parents=True)
        other = bad[(i + 1) % len(bad)]
        attributes = [
            LfAttribute("A", "kind", name=payload, emb_id=other),
            LfAttribute("A", "x", datatype="numeric", name=other + "n"),
            LfAttribute("N", "string", number=1, name=payload + "l", emb_id=payload),
        ]
        labels = [payload, other, "plain"]
        records = [
            [[rng.choice(["a", "b"]), rng.random(), [rng.choice(["p", "q", "r"])]], labels[j % 3]]
            for j in range(40)
        ]
        meta = write_lf(case, "hostile", attributes, records, is_sequence=False)
        model = case / "m''';x=1;'''\n\"\"\";x=2;\"\"\"\\"
        service.train(str(meta), str(model), TrainOptions(max_epochs=1, threads=1, device="cpu"))
        document = json.loads((model / "model.json").read_text(encoding="utf-8"))
        document["metadata"]["training"]["meta_file"] = payload
        (model / "model.json").write_text(json.dumps(document), encoding="utf-8")
        for source in (meta, model):
            route = f"payload {i} from the {'meta file' if source == meta else 'model directory'}"
            target = case / "ejected.py"
            run = subprocess.run(
                [sys.executable, "-m", "lfengine", "eject", str(source), "-o", str(target), "--force"],
                cwd=case,
                env=engine_env(),
                capture_output=True,
                timeout=TIMEOUT,
            )
            err = run.stderr.decode("utf-8", "replace")
            problem = (
                _import_problem(target, labels)
                if run.returncode == 0
                else f"exit {run.returncode}: {err[-800:]}"
            )
            runs += marker.exists()
            if marker.exists():
                tally.add("lost", route, "the payload ran")
                marker.unlink()
            elif TRACEBACK in err:
                tally.add("traceback", route, err[-1500:])
            elif problem:
                tally.add("crash", route, problem)
            else:
                tally.add("handled")
    tally.seconds = time.monotonic() - started
    tally.category += f" ({runs} payload runs)"
    return tally


def _import_problem(path: Path, labels: list[str]) -> str | None:
    """None when the ejected file imports and its LABELS are the data's, character for character."""
    spec = importlib.util.spec_from_file_location(f"ejected_{time.monotonic_ns()}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the bench reports whatever the generated file does
        return f"the ejected file does not import: {type(exc).__name__}: {exc}"
    if set(module.LABELS) != set(labels):
        return f"labels changed: {module.LABELS!r:.300}"
    return None


def run_code_execution(workdir: Path, seed: int = 1) -> list[Tally]:
    meta, base = base_model(workdir)
    return [run_module_routes(workdir / "routes", meta, base), run_eject_strings(workdir / "eject", seed)]


if __name__ == "__main__":  # a quick look: python -m bench.reliability.code_routes
    import tempfile

    sys.path.insert(0, str(REPO))
    from bench.reliability.tally import table

    with tempfile.TemporaryDirectory() as tmp:
        print(table(run_code_execution(Path(tmp))))
