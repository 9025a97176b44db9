"""The column-kind seam: one class per further LF feature kind, found by name in ``KINDS``.

A kind claims columns of the meta file, keeps JSON settings for them in the codec (stored in
model.json under ``kinds``), encodes their raw values, says how wide its input vector is and
builds the torch module that turns its batch part into that vector. The data layer and the
builder call these methods; neither imports a kind. A kind module lives above both (it may
import torch modules of the builder) and calls ``register`` when imported, so a new kind is one
file (its class and the ``register`` call) plus its tests.

The data layer pads a kind's encoded part by its shape: a rows-aligned ``numpy`` array
(rows, W) is gathered like the numeric columns, a ``Ragged`` like a list column (its pad value
0, with the row lengths). A model directory is data: a kind it names is looked up here, never
imported; one that no imported module registered is a clear error.

Optional hooks (the base class's defaults leave a kind as it was): ``noise`` changes a training
batch's part on purpose (as word dropout does for token columns), and a kind that names its
torch module's class in ``module_class`` and that class's constructor arguments in
``module_args`` gets ``module`` for free and can be ejected: ``lfengine eject`` writes the
class's own source and a constructor call of literals (lfengine/builder/kind_parts.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lfengine.data.codec_parts import BUILT_IN_PARTS
from lfengine.data.meta import Column, FeatureSpec
from lfengine.errors import ModelError

#: Raises the error for ``(row, column index, problem, **details)``: file and line (and sequence
#: element) are filled in by the encoder, exactly as for the built-in columns.
ErrorAt = Callable[..., Exception]


class ColumnKind:
    """Base of a column kind; subclasses set ``name`` and implement every method."""

    name: str = ""

    def claims(self, spec: FeatureSpec, column: Column) -> bool:
        """True when ``column`` belongs to this kind (checked before the built-in groups)."""
        raise NotImplementedError

    def settings(self, spec: FeatureSpec, columns: list[Column]) -> dict[str, Any]:
        """JSON settings for the claimed columns (their statistics, vocabulary ...)."""
        raise NotImplementedError

    def encode(self, settings: dict[str, Any], values: list[tuple], error: ErrorAt) -> Any:
        """The claimed columns' raw values (one tuple per column, in ``columns`` order) as a
        rows-aligned array or a ``Ragged``; bad values raise ``error(row, column, problem, ...)``."""
        raise NotImplementedError

    def width(self, settings: dict[str, Any], config: Any) -> int:
        """Width of the vector the module adds per instance or sequence element."""
        raise NotImplementedError

    def module(self, settings: dict[str, Any], config: Any) -> Any:
        """The torch module: ``forward(part, lengths, mask)`` -> (..., width). By default
        ``module_class(*module_args(settings, config))``."""
        if self.module_class is None:
            raise NotImplementedError(f"column kind {self.name!r} sets neither module nor module_class")
        return self.module_class(*self.module_args(settings, config))

    #: The class ``module`` builds. Eject writes its source (``inspect.getsource``) into the
    #: generated file, so it may use only torch, ``nn`` and numpy (``np``) besides itself.
    module_class: type | None = None

    def module_args(self, settings: dict[str, Any], config: Any) -> tuple:
        """``module_class``'s constructor arguments: strings, numbers, booleans, None and tuples
        of them (eject writes each as a literal)."""
        raise NotImplementedError

    def eject(self, settings: dict[str, Any], config: Any) -> tuple[type, tuple] | None:
        """(module class, constructor arguments) for eject; None: no source form (eject refuses)."""
        if self.module_class is None:
            return None
        return self.module_class, tuple(self.module_args(settings, config))

    def noise(self, settings: dict[str, Any], part: Any, lengths: Any, config: Any) -> Any:
        """The training batch's part with noise put in on purpose (``lengths``: those of a ragged
        part, else None); called for training batches only. Default: unchanged."""
        return part


#: Registered kinds by name, in registration order (the order a codec's parts are built in).
KINDS: dict[str, ColumnKind] = {}


def register(kind: ColumnKind) -> ColumnKind:
    """Make ``kind`` known to codecs, encoders and networks built from now on."""
    taken = kind.name in BUILT_IN_PARTS or kind.name in KINDS and KINDS[kind.name] is not kind
    if not kind.name or taken:
        raise ValueError(
            f"column kind {kind.name!r}: needs a name no other kind (built-in or registered) has"
        )
    KINDS[kind.name] = kind
    return kind


def kind_named(name: str) -> ColumnKind:
    """The registered kind ``name``; a model that names an unknown kind is an error."""
    if name not in KINDS:
        raise ModelError(
            f"the model uses column kind {name!r}, which no loaded module registers "
            f"(known: {sorted(KINDS) or 'none'})"
        )
    return KINDS[name]


def claiming_kind(spec: FeatureSpec, column: Column) -> ColumnKind | None:
    return next((kind for kind in KINDS.values() if kind.claims(spec, column)), None)
