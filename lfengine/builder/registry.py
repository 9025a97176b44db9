"""Which network a model uses: a predefined name, or a user module named by its file.

Predefined names: ``auto`` (the default; also chosen when no module is given): Classifier,
SequenceTagger or Regressor by the data's task; ``Classifier``, ``SequenceTagger``,
``Regressor``: the same networks by name; ``NerTagger``: BiLSTM-CRF with character CNN and
casing/shape flags; ``PosTagger``: BiLSTM softmax with character CNN and shape flags;
``TextCnn``: Kim (2014) CNN text classifier over the first token-list column;
``BiLstmAttentionClassifier``: BiLSTM with attention pooling over that column;
``MlpClassifier``: the window classifier, all columns, token lists averaged, two hidden layers;
``BiLstmCrfTagger``: the auto tagger with the CRF always on. See docs/modules.md.

User modules
------------
Name a module as ``path/to/file.py:ClassName`` (an absolute path, or relative to the working
directory of the engine). The contract:

* The class subclasses ``lfengine.builder.TaskModel`` (a ``torch.nn.Module``).
* Its constructor is ``__init__(self, layout, config, init=None)`` and first calls
  ``super().__init__(layout, config, init)``. ``layout`` (``InputLayout``) describes the
  columns (``nominal``, ``numeric``, ``lists``, ``chars``), the embedding tables
  (``embeddings``: vocabulary size, dims, mode per emb_id), the task and the labels: size the
  layers from it. ``config`` (``ModelConfig``) holds the sizes and training settings chosen by
  the heuristics or the user. ``init`` maps emb_id to the initial embedding matrix (numpy,
  vocab_size x dims); it is None when the model is rebuilt to load stored weights. The
  building blocks ``FeatureEmbeddings`` (shared tables that honour the yes/no/mapping/onehot
  modes) and ``InputFeatures`` (all columns -> one vector) are there to be reused.
* ``forward(self, batch)`` receives a ``Batch`` (lfengine/data/batch.py) already on the
  model's device and returns raw scores: (B, C) logits for classification, (B, T, C) per-token
  logits for sequences, (B,) values for regression (standardised targets).
* Optional overrides: ``loss(batch)`` (default: cross-entropy ignoring padding, or MSE),
  ``predict(batch) -> Prediction`` (default: softmax; ``confidence`` must be the probability
  of the chosen label), ``make_optimizer()`` (default: AdamW on the trainable parameters),
  ``check_layout(layout)`` / ``check_config(layout, config)`` (raise ``OptionError`` for data
  or settings the module cannot handle), ``input_notes(layout, config)`` (lines for describe
  and the log: the LF columns it reads and ignores) and the class attribute ``config_defaults``
  (settings the module prefers over the general heuristics; the user's explicit settings still
  win).
* The engine seeds torch before construction; do not seed inside the module.
* A trained model stores the module name, its configuration and the state dict, never
  pickled objects. Loading imports the class again from the same file, builds it with
  ``init=None`` and loads the weights: the file must still exist at that path, and the
  constructor must rebuild the same parameters from ``layout`` and ``config`` alone.
* The file is executed as Python code when (and only when) it is named: name only files you
  trust. A trained model stores the name in its model.json, but loading the model imports the
  file only when the caller allows it at load time (``trust_module``): a model directory is
  data, and a copied one could name any file.

Permission to import
--------------------
``resolve_module`` is the one place a user file is imported, and it imports only what the
``ModulePermission`` in force allows (``allow_modules``; outside one, nothing). The front ends
set it from what the caller said itself: the modules its own options name (a flag, a request's
options, a plain options file), or any module with ``trust_module``. Names read from a model
directory (a stored model.json, ``--resume``, ``--config MODEL_DIR``) never grant it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from lfengine.builder.base import TaskModel
from lfengine.builder.modules import PREDEFINED_MODULES
from lfengine.builder.networks import AutoNetwork, Classifier, Regressor, SequenceTagger
from lfengine.errors import OptionError, UntrustedModuleError

AUTO = "auto"

PREDEFINED: dict[str, type[TaskModel]] = {
    AUTO: AutoNetwork,
    **{network.__name__: network for network in (Classifier, SequenceTagger, Regressor, *PREDEFINED_MODULES)},
}


def is_user_module(name: str | None) -> bool:
    """Whether ``name`` names a user's file (anything but the auto network and predefined names)."""
    return bool(name) and name != AUTO and name not in PREDEFINED


def absolute_module(name: str | None) -> str | None:
    """A user module's name with its file as an absolute path: it is stored with the model and
    imported again later, possibly from another working directory."""
    if not is_user_module(name) or ".py:" not in name:
        return name
    path, _, class_name = name.rpartition(":")
    return f"{os.path.abspath(path)}:{class_name}"


@dataclass(frozen=True)
class ModulePermission:
    """Which user module files the caller lets the engine import (execute).

    ``named``: the modules the caller named itself (absolute names); ``any_module``: the caller
    said ``trust_module``, so a module named by a model directory may be imported too. Built by
    the front ends from the caller's own words, never from a file the engine reads.
    """

    named: frozenset[str] = frozenset()
    any_module: bool = False

    @classmethod
    def of(cls, names: Iterable[str | None] = (), *, any_module: bool = False) -> ModulePermission:
        absolute = (absolute_module(n) for n in names if is_user_module(n))
        return cls(frozenset(n for n in absolute if n), any_module)

    def allows(self, name: str) -> bool:
        return self.any_module or absolute_module(name) in self.named


NO_MODULES = ModulePermission()
_PERMISSION: ContextVar[ModulePermission] = ContextVar("lfengine_module_permission", default=NO_MODULES)


@contextlib.contextmanager
def allow_modules(permission: ModulePermission) -> Iterator[None]:
    """Import the user modules ``permission`` allows while the block runs (in this thread)."""
    token = _PERMISSION.set(permission)
    try:
        yield
    finally:
        _PERMISSION.reset(token)


def check_module_allowed(name: str | None, where: str | None = None) -> None:
    """Refuse a user module the caller did not allow: the one check before any user file is
    imported (``resolve_module`` calls it; a front end may call it early, naming the model
    directory ``where`` the name was read, to fail before any work)."""
    if is_user_module(name) and not _PERMISSION.get().allows(name):
        prefix = f"{where}: " if where else ""
        raise UntrustedModuleError(
            f"{prefix}the user module {name!r} was not named by this command or request (it was "
            "read from a file: a model directory's model.json, through --resume or --config, or a "
            "--config options file); loading it would import (execute) that file. lfengine imports "
            'a module file only when the caller names it itself (--module / the "module" option) '
            'or allows it: "trust_module": true in the request (protocol), --trust-module (command line) or '
            "--trust_module (apply.sh). Allow it only for a model directory and module file you trust.",
            module=name,
            file=where,
        )


def resolve_module(name: str | None) -> type[TaskModel]:
    """The TaskModel class for a module name (None or "auto": the auto-built network); a user
    module's file is imported only when the permission in force allows it."""
    if name is None or name == AUTO:
        return AutoNetwork
    if name in PREDEFINED:
        return PREDEFINED[name]
    path, sep, class_name = name.rpartition(":")
    if sep and path.endswith(".py") and class_name:
        check_module_allowed(name)
        return _load_user_class(path, class_name)
    if name.endswith(".py"):
        raise OptionError(f"module {name!r}: name the class too, as {name}:ClassName")
    raise OptionError(
        f"unknown module {name!r}; predefined modules: {', '.join(PREDEFINED)}; "
        "or a user module as path/to/file.py:ClassName"
    )


def _load_user_class(path: str, class_name: str) -> type[TaskModel]:
    full_path = os.path.abspath(path)
    if not os.path.isfile(full_path):
        raise OptionError(f"module file not found: {path} (looked for {full_path})")
    module = _import_file(full_path)
    candidate = getattr(module, class_name, None)
    if candidate is None:
        raise OptionError(f"module file {path} has no class {class_name!r}")
    if not inspect.isclass(candidate) or not issubclass(candidate, TaskModel):
        raise OptionError(
            f"{path}:{class_name} must be a class that subclasses lfengine.builder.TaskModel "
            f"(got {type(candidate).__name__} {candidate!r})"
        )
    return candidate


_IMPORTED: dict[tuple[str, float], object] = {}


def _import_file(full_path: str) -> object:
    """Import a Python file once per (path, modification time) under a name of its own."""
    key = (full_path, os.path.getmtime(full_path))
    if key in _IMPORTED:
        return _IMPORTED[key]
    digest = hashlib.sha1(repr(key).encode()).hexdigest()[:12]
    module_name = f"lfengine_user_module_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, full_path)
    if spec is None or spec.loader is None:
        raise OptionError(f"cannot import module file {full_path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's code: report any failure as a user error
        del sys.modules[module_name]
        raise OptionError(f"importing module file {full_path} failed: {type(err).__name__}: {err}") from err
    _IMPORTED[key] = module
    return module
