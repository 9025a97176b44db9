"""The part of ``InputFeatures`` for the registered column kinds (lfengine/data/kinds.py).

Each kind's module sits in ``kinds`` (an ``nn.ModuleDict`` by kind name) and reads
``batch.kinds[name]``. Eject writes a kind from its own definition: the source of the class it
builds (``inspect.getsource``) and a constructor call whose arguments are literals (``py``), so
nothing is written twice; a kind without ``module_class`` has no source form and is refused.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

from torch import nn

from lfengine.builder.embeddings import FeatureEmbeddings
from lfengine.builder.literals import comment, py
from lfengine.builder.parts import FeaturePart, PartSource
from lfengine.data.batch import Batch, InputLayout
from lfengine.data.kinds import kind_named
from lfengine.errors import ModelError, OptionError

#: Names the ejected file defines itself: a kind's class may not take one of them.
_GENERATED_NAMES = frozenset({"Features", "Hidden", "check_same_data"})


class KindsPart(FeaturePart):
    """Every registered column kind with columns in the layout, after the built-in parts."""

    attr = "kinds"

    def __init__(self, layout: InputLayout, config: Any) -> None:
        self.layout, self.config = layout, config

    @property
    def width(self) -> int:
        return sum(kind_named(name).width(settings, self.config) for name, settings in self.layout.kinds)

    def build(self, embeddings: FeatureEmbeddings) -> nn.Module:
        return nn.ModuleDict(
            {name: kind_named(name).module(settings, self.config) for name, settings in self.layout.kinds}
        )

    def forward(self, module: Any, batch: Batch, mask: Any, embeddings: FeatureEmbeddings) -> list:
        vectors = []
        for name, kind_module in module.items():
            if name not in batch.kinds:
                raise ModelError(f"the model uses column kind {name!r} but the batch has none")
            vectors.append(kind_module(batch.kinds[name], batch.kind_lengths.get(name), mask))
        return vectors

    def source(self) -> PartSource:
        out = PartSource(uses_mask=True)
        classes: dict[str, tuple[type, str]] = {}
        out.init += ["        self.kinds = nn.ModuleDict(", "            {"]
        for name, settings in self.layout.kinds:
            kind = kind_named(name)
            cls, args = self._form(name, kind.eject(settings, self.config))
            if cls.__name__ not in classes:
                classes[cls.__name__] = (cls, _class_source(name, cls))
            elif classes[cls.__name__][0] is not cls:
                raise OptionError(f"column kind {name!r}: two kinds' classes are named {cls.__name__!r}")
            width = kind.width(settings, self.config)
            columns = ", ".join(py(i) for i in settings.get("columns", ()))
            out.init += comment(f"column kind {py(name)} over columns {columns or 'none'} -> {width}", 16)
            out.init.append(f"                {py(name)}: {cls.__name__}({', '.join(py(a) for a in args)}),")
            out.forward += comment(f"column kind {py(name)} -> {width}", 12)
            out.forward.append(
                f"            self.kinds[{py(name)}](batch.kinds[{py(name)}], "
                f"batch.kind_lengths.get({py(name)}), mask),"
            )
            out.diagram.append(f"column kind {py(name)} -> {cls.__name__} -> {width}")
            out.width += width
        out.init += ["            }", "        )"]
        out.classes = [text for _, text in classes.values()]
        return out

    @staticmethod
    def _form(name: str, form: tuple[type, tuple] | None) -> tuple[type, tuple]:
        if form is None:
            raise OptionError(
                f"column kind {name!r} has no source form (it sets no module_class): "
                "build the network with lfengine instead"
            )
        cls, args = form
        if not cls.__name__.isidentifier() or cls.__name__ in _GENERATED_NAMES:
            raise OptionError(f"column kind {name!r}: eject cannot write a class named {cls.__name__!r}")
        return cls, args


def _class_source(name: str, cls: type) -> str:
    """The class's own source, as written in its file (imported: the kind registered it)."""
    try:
        return textwrap.dedent(inspect.getsource(cls)).rstrip()
    except (OSError, TypeError) as exc:
        raise OptionError(
            f"column kind {name!r}: eject cannot read the source of {cls.__name__}: {exc}"
        ) from None
