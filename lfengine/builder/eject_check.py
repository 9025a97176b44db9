"""The last gate before ``lfengine eject`` writes a file: the generated source must parse to the
shape eject writes, so that a column name, label or path that broke out of its literal is refused
instead of written (and later imported) as code.

Every value that comes from the data or a model directory reaches the source through
``literals.py``, which escapes it; this check does not trust that: it parses the result and
allows, at module level, only a docstring, imports of a fixed set of modules, constants that hold
data (literals, and ``EmbeddingInfo(...)`` of literals), functions and classes.
"""

from __future__ import annotations

import ast

from lfengine.errors import ModelError

#: What the generated file imports (and lfengine.*); anything else means a string escaped.
IMPORTS = frozenset({"__future__", "typing", "numpy", "torch", "torch.nn.utils.rnn"})
#: The module-level statements eject writes.
STATEMENTS = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.FunctionDef, ast.ClassDef)
#: What a constant's value may be made of; a call must be ``EmbeddingInfo(...)`` (see ``_is_data``).
DATA = (ast.Constant, ast.Tuple, ast.List, ast.Dict, ast.UnaryOp, ast.USub, ast.Load, ast.Call, ast.keyword)
#: What a constant's annotation may be made of (``dict[str, Any]``).
TYPES = (ast.Name, ast.Subscript, ast.Tuple, ast.Load)


def checked_source(text: str) -> str:
    """``text``, or ModelError (nothing written) unless it is the shape eject writes."""
    try:
        tree = ast.parse(text)
    except SyntaxError as err:
        raise ModelError(
            f"eject generated source that does not parse ({err.msg}, line {err.lineno}); nothing was written"
        ) from None
    docstring, *body = tree.body
    strays = [node for node in body if not isinstance(node, STATEMENTS) or not _binds_data(node)]
    if not (isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)) or strays:
        raise ModelError("eject generated source with unexpected top-level statements; nothing was written")
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(n not in IMPORTS and not n.startswith("lfengine.") for n in names):
            raise ModelError(f"eject generated source importing {names}; nothing was written")
    return text


def _binds_data(node: ast.stmt) -> bool:
    """An assignment binds plain names to data and runs nothing; other statements pass."""
    if isinstance(node, ast.AnnAssign):
        typed = all(isinstance(part, TYPES) for part in ast.walk(node.annotation))
        return typed and node.value is not None and _is_name(node.target) and _is_data(node.value)
    if isinstance(node, ast.Assign):
        return all(map(_is_name, node.targets)) and _is_data(node.value)
    return True


def _is_name(target: ast.expr) -> bool:
    return isinstance(target, ast.Name)


def _is_data(value: ast.expr) -> bool:
    """Literals, containers of data, and ``EmbeddingInfo(...)`` whose arguments are data."""
    parts = list(ast.walk(value))
    calls = [part for part in parts if isinstance(part, ast.Call)]
    names = [part for part in parts if isinstance(part, ast.Name)]
    called = all(isinstance(call.func, ast.Name) and call.func.id == "EmbeddingInfo" for call in calls)
    # each call's function is one of the names: as many names as calls leaves no other name
    return called and len(names) == len(calls) and all(isinstance(part, (*DATA, ast.Name)) for part in parts)
