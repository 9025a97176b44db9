"""The house rules of issues 10 and 21, checked on the source: no import circles inside lfengine/,
neither between modules nor between packages, at most 15 modules at its top, no module over 400
lines, no long functions in the runtime's four central modules; and a new input feature kind is
one file (tests/kind_score_bins.py) that trains, saves, loads, applies and ejects through the
engine's own code paths.

The import check reads the code with ``ast`` (nothing is imported), so it sees every import,
also those inside functions: a lazy import hides a circle from start-up, not from the reader.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from lfengine import cli, service
from lfengine.data import kinds
from lfengine.data.synthetic import write_classification_corpus
from lfengine.eject import load_weights
from lfengine.errors import DataLineError
from lfengine.predictor import Predictor
from lfengine.storage import store

PACKAGE = Path(__file__).resolve().parent.parent / "lfengine"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
#: Modules directly in lfengine/ (``__init__`` and ``__main__`` count): the rest live in packages
#: named for what they hold, so the top reads as a table of contents.
MAX_TOP_LEVEL_MODULES = 15
CENTRAL_MODULES = ("service.py", "training/trainer.py", "serving/dispatcher.py", "serving/server.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The lfengine modules one file imports (``from pkg import sub`` names the submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {name for name in found if name in modules and name != here}


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imported_modules(path, modules) for name, path in modules.items()}


def find_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def test_the_circle_finder_sees_a_circle_and_a_clean_chain():
    assert find_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_import_graph_resolves_packages_and_submodules():
    graph = import_graph()
    assert graph["lfengine.__main__"] == {"lfengine.launch"}
    assert "lfengine.cli" in graph["lfengine.launch"]  # `from lfengine.cli import main`: the package
    assert "lfengine.cli.hints" in graph["lfengine.cli.commands"]  # `from lfengine.cli import hints`
    assert "lfengine.cli" not in graph["lfengine.cli.commands"]


def test_no_import_circles_in_lfengine():
    circles = find_circles(import_graph())
    assert circles == [], "modules that import each other: " + "; ".join(" <-> ".join(c) for c in circles)


def test_no_import_circles_between_packages():
    """Read as rooms (a package is one room, as farm-studio draws it), the house has no circle
    either: lfengine.storage may import lfengine.files, never the other way round."""

    def room(name: str) -> str:
        return ".".join(name.split(".")[:2])

    rooms: dict[str, set[str]] = {}
    for name, imports in import_graph().items():
        rooms.setdefault(room(name), set()).update(room(i) for i in imports if room(i) != room(name))
    circles = find_circles(rooms)
    assert circles == [], "packages that import each other: " + "; ".join(" <-> ".join(c) for c in circles)


def test_at_most_15_modules_at_the_top_of_lfengine():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} modules at the top of lfengine/: {top}"


def test_no_module_over_the_line_limit():
    long = {
        str(path.relative_to(PACKAGE.parent)): count
        for path in PACKAGE.rglob("*.py")
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"


@pytest.mark.parametrize("name", CENTRAL_MODULES)
def test_no_long_function_in_the_central_modules(name: str):
    path = PACKAGE / name
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    long = {
        f"{node.name} (line {node.lineno})": node.end_lineno - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    }
    assert long == {}, f"functions over {MAX_FUNCTION_LINES} lines in {name}: {long}"


def _load_file(path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """Import a file as a user does, freshly (a kind module registers its kind when imported)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_a_new_feature_kind_is_one_file_that_trains_saves_applies_and_ejects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kinds, "KINDS", {})  # the kind is registered for this test only
    kind = _load_file(Path(__file__).with_name("kind_score_bins.py"), "kind_score_bins", monkeypatch).KIND
    meta = write_classification_corpus(tmp_path / "data", 120, seed=5)
    model_dir = tmp_path / "model"
    train = ["train", str(meta), str(model_dir), "--max-epochs", "2", "--seed", "1", "--threads", "1"]
    assert cli.main([*train, "--device", "cpu"]) == 0
    assert kind.noised > 0  # training batches went through the kind's noise hook

    metadata, weights = store.load_model_dir(model_dir)
    settings = next(part for part in metadata["codec"]["parts"] if part["kind"] == "score_bins")
    assert settings["columns"] == [1] and settings["low"] < settings["high"]
    assert weights["features.kinds.score_bins.table.weight"].shape == (9, 4)

    records = [json.loads(line) for line in meta.with_name("class-synth.data.json").read_text().splitlines()]
    instances = [features for features, _ in records[:40]]
    built = service.load_model(str(model_dir)).apply(instances, distribution=True)
    assert len(built) == 40
    bad = [[instances[0][0], "high", instances[0][2]]]  # refused with the kind's column named
    with pytest.raises(DataLineError, match="score"):
        service.load_model(str(model_dir)).apply(bad)

    source = tmp_path / "with_bins.py"
    assert cli.main(["eject", str(model_dir), "-o", str(source)]) == 0
    text = source.read_text(encoding="utf-8")
    assert "class BinEmbedding(nn.Module):" in text and '"score_bins": BinEmbedding(9, 4),' in text
    network, codec = load_weights(_load_file(source, "with_bins", monkeypatch).WithBins, str(model_dir))
    assert Predictor(network, codec, "cpu").apply(instances, distribution=True) == built
    assert torch.equal(
        network.state_dict()["features.kinds.score_bins.table.weight"],
        weights["features.kinds.score_bins.table.weight"],
    )
