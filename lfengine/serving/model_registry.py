"""The models resident in one engine process, by name and by directory.

The dispatcher resolves every ``model`` parameter here (protocol.md §5): a name given by
``init`` or ``train``, else a model directory, loaded on first use and kept under its real
path. Loading goes through lfengine.service (imported when first needed, so that start-up and
``status`` stay cheap). A model directory is data: a user module named in its model.json is
imported only when the request that loads it says ``trust_module``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from lfengine.errors import UnknownModelError
from lfengine.files.paths import path_problem


@dataclass
class LoadedEntry:
    model: Any  # lfengine.service.LoadedModel
    model_dir: str  # real path, the key that ties names to directories

    def summary(self) -> dict[str, Any]:
        # num_labels is the count; "labels" (the same count) stays for one version for old clients,
        # although elsewhere "labels" is a list of names (protocol.md §5.1).
        count = len(self.model.labels)
        return {"dir": self.model_dir, "task": self.model.task, "num_labels": count, "labels": count}


class ModelRegistry:
    """Loaded models; thread-safe (the reader thread lists them for ``status``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._named: dict[str, LoadedEntry] = {}
        self._by_dir: dict[str, LoadedEntry] = {}

    def load(
        self,
        model_dir: str,
        device: str,
        *,
        trust_module: bool = False,
        named_modules: tuple[str, ...] = (),
    ) -> LoadedEntry:
        """Load a model directory now (not registered: see add_named)."""
        from lfengine import service

        model = service.load_model(
            model_dir, device=device, trust_module=trust_module, named_modules=named_modules
        )
        return LoadedEntry(model, os.path.realpath(model_dir))

    def add_named(self, entries: dict[str, LoadedEntry]) -> None:
        with self._lock:
            self._named.update(entries)

    def resolve(self, spec: str, device: str, *, trust_module: bool = False) -> Any:
        """A loaded model by name, else by directory: one already loaded from that directory
        (under a name or not), or else loaded now and kept."""
        if path_problem(spec) is not None:
            # Not a name given by init/train (those are checked the same way) nor a directory.
            raise UnknownModelError(
                f"no model named {spec!r} is loaded, and it cannot be a directory ({path_problem(spec)})",
                model=spec,
            )
        key = os.path.realpath(spec)
        with self._lock:
            entry = self._named.get(spec) or self._by_dir.get(key)
            entry = entry or next((e for e in self._named.values() if e.model_dir == key), None)
            names = sorted(self._named)
        if entry is None:
            if not os.path.isdir(spec):
                raise UnknownModelError(
                    f"no model named {spec!r} is loaded and there is no model directory {spec!r}; "
                    f"loaded: {', '.join(names) or 'none'}",
                    model=spec,
                )
            entry = self.load(spec, device, trust_module=trust_module)
            with self._lock:
                entry = self._by_dir.setdefault(key, entry)
        return entry.model

    def reload_after_training(
        self,
        model_dir: str,
        name: str | None,
        device: str,
        *,
        trust_module: bool = False,
        named_modules: tuple[str, ...] = (),
    ) -> None:
        """Models loaded from a directory that was just trained into are replaced by the new one.

        The new model is loaded with the training request's own leave (the modules it named,
        or ``trust_module``): the one it trained with, and nothing the directory says since.
        """
        key = os.path.realpath(model_dir)
        with self._lock:
            stale = [n for n, entry in self._named.items() if entry.model_dir == key]
            self._by_dir.pop(key, None)
        if not stale and name is None:
            return
        entry = self.load(model_dir, device, trust_module=trust_module, named_modules=named_modules)
        with self._lock:
            for stale_name in stale:
                self._named[stale_name] = entry
            if name is not None:
                self._named[name] = entry

    def summaries(self) -> list[dict[str, Any]]:
        """``[{name, dir, task, labels}]`` of every loaded model (status)."""
        with self._lock:
            models = [{"name": name, **entry.summary()} for name, entry in self._named.items()]
            models += [{"name": None, **entry.summary()} for entry in self._by_dir.values()]
        return models
