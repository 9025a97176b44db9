"""A readable description of a built network: layer tree, sizes, parameter counts, frozen parts.

Container modules (ModuleDict, ModuleList, Sequential) are flattened into their parent; a
module reachable twice (a shared table) is described once and then referred to by its path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import nn

from lfengine.builder.base import TaskModel
from lfengine.builder.crf import Crf

_CONTAINERS = (nn.ModuleDict, nn.ModuleList, nn.Sequential)


def describe_model(model: TaskModel) -> dict[str, Any]:
    """JSON-able tree: name, type, detail, output size, parameters (trainable), children."""
    walker = _Walker()
    root = walker.visit("model", model, "")
    if isinstance(model, TaskModel):
        root["output"] = model.layout.num_labels or 1
        root["task"] = model.layout.task
    return root


def describe_architecture(model: TaskModel) -> dict[str, Any]:
    """The tree, its rendering and the parameter count: a description's ``architecture``."""
    tree = describe_model(model)
    return {"text": render_tree(tree), "tree": tree, "parameters": tree.get("parameters", 0)}


def render_tree(tree: dict[str, Any]) -> str:
    """The tree as indented text, one layer per line."""
    lines = [_line(tree)]
    _render_children(tree.get("children", []), "", lines)
    return "\n".join(lines)


class _Walker:
    def __init__(self) -> None:
        self.seen: dict[int, str] = {}
        self.counted: set[int] = set()

    def visit(self, name: str, module: nn.Module, path: str) -> dict[str, Any]:
        if id(module) in self.seen:
            return {"name": name, "type": type(module).__name__, "shared_with": self.seen[id(module)]}
        self.seen[id(module)] = path or name
        labels = module.describe_labels() if hasattr(module, "describe_labels") else {}
        children = [
            self.visit(
                labels.get(child_path, child_path), child, f"{path}.{child_path}" if path else child_path
            )
            for child_path, child in _flat_children(module)
        ]
        total = sum(child.get("parameters", 0) for child in children)
        trainable = sum(child.get("trainable_parameters", 0) for child in children)
        for parameter in _direct_parameters(module):
            if id(parameter) not in self.counted:
                self.counted.add(id(parameter))
                total += parameter.numel()
                trainable += parameter.numel() if parameter.requires_grad else 0
        node: dict[str, Any] = {"name": name, "type": type(module).__name__}
        detail = _detail(module)
        if detail:
            node["detail"] = detail
        output = _output_size(module)
        if output is not None:
            node["output"] = output
        node["parameters"] = total
        node["trainable_parameters"] = trainable
        if total:
            node["trainable"] = "yes" if trainable == total else "no" if trainable == 0 else "partial"
        if children:
            node["children"] = children
        return node


def _flat_children(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    for name, child in module.named_children():
        if isinstance(child, _CONTAINERS):
            yield from _flat_children(child, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", child


def _direct_parameters(module: nn.Module) -> Iterator[nn.Parameter]:
    yield from module.parameters(recurse=False)
    for child in module.children():
        if isinstance(child, _CONTAINERS):
            yield from _direct_parameters(child)


def _output_size(module: nn.Module) -> int | None:
    size = getattr(module, "output_size", None)
    if isinstance(size, int):
        return size
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.Embedding):
        return module.embedding_dim
    if isinstance(module, nn.RNNBase):
        return module.hidden_size * (2 if module.bidirectional else 1)
    if isinstance(module, nn.Conv1d):
        return module.out_channels
    return None


def _detail(module: nn.Module) -> str | None:
    if hasattr(module, "describe_detail"):
        return module.describe_detail()
    if isinstance(module, nn.Linear):
        return f"{module.in_features} -> {module.out_features}"
    if isinstance(module, nn.Embedding):
        return f"{module.num_embeddings} x {module.embedding_dim}"
    if isinstance(module, nn.RNNBase):
        directions = "bidirectional" if module.bidirectional else "unidirectional"
        return f"{module.input_size} -> {module.hidden_size}, {module.num_layers} layer(s), {directions}"
    if isinstance(module, nn.Conv1d):
        return f"{module.in_channels} -> {module.out_channels}, kernel {module.kernel_size[0]}"
    if isinstance(module, nn.Dropout):
        return f"p={module.p:g}"
    if isinstance(module, Crf):
        only = ", valid chunk transitions only" if module.constrained else ""
        return f"{module.num_labels} labels, start/end transitions{only}"
    return None


def _line(node: dict[str, Any]) -> str:
    if "shared_with" in node:
        return f"{node['name']}: {node['type']} (shared, see {node['shared_with']})"
    text = f"{node['name']}: {node['type']}"
    if "detail" in node:
        text += f" [{node['detail']}]"
    if "output" in node:
        text += f" -> {node['output']}"
    if node.get("parameters"):
        text += f"  {node['parameters']:,} params"
        if node["trainable"] == "no":
            text += " (frozen)"
        elif node["trainable"] == "partial":
            text += f" ({node['trainable_parameters']:,} trainable)"
    return text


def _render_children(children: list[dict[str, Any]], indent: str, lines: list[str]) -> None:
    for i, child in enumerate(children):
        last = i == len(children) - 1
        lines.append(f"{indent}{'└─ ' if last else '├─ '}{_line(child)}")
        _render_children(child.get("children", []), indent + ("   " if last else "│  "), lines)
