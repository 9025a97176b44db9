"""The ``Features`` class of an ejected network (``lfengine eject``): every input column to one
vector, written out with its sizes resolved. It is a loop over the same parts that build
``builder.features.InputFeatures`` (``feature_parts``): each part writes its own module
construction and its reading of the batch (``FeaturePart.source``), so that stored weights load
into the written class. eject_source.py writes the rest.

Every name, label and path comes from a meta file or a model directory (data a stranger may
have written), so each reaches the source as a literal written by ``py`` (literals.py), and
every number as a checked int; eject_check.checked_source parses the result before it is written.
"""

from __future__ import annotations

from lfengine.builder.config import ModelConfig
from lfengine.builder.features import feature_parts
from lfengine.builder.literals import WIDTH, comment, py, whole, wrap
from lfengine.builder.parts import PartSource
from lfengine.data.batch import InputLayout

__all__ = ["WIDTH", "FeaturesWriter", "py", "whole", "wrap"]


class FeaturesWriter:
    """Writes the Features class; keeps the diagram lines and the feature size for the network."""

    def __init__(self, layout: InputLayout, config: ModelConfig) -> None:
        self.layout = layout
        self.config = config
        chars = layout.is_sequence and layout.chars is not None
        self.parts = feature_parts(
            layout,
            config,
            use_chars=chars and config.char_encoder,
            use_shape=chars and config.word_shape,
            affix_dims=config.affix_dims if chars else 0,
        )
        self.used_ids = list(dict.fromkeys(emb_id for part in self.parts for emb_id in part.tables()))
        self.sources: list[PartSource] = [part.source() for part in self.parts]
        self.shape = any(source.uses_alphabet for source in self.sources)
        self.diagram: list[str] = []
        self.size = 0

    def imports(self) -> dict[str, set[str]]:
        """The lfengine names the Features class uses, per module."""
        names: dict[str, set[str]] = {}
        if self.used_ids:
            names["lfengine.builder.embeddings"] = {"FeatureEmbeddings"}
        for source in self.sources:
            for module, found in source.imports.items():
                names.setdefault(module, set()).update(found)
        return names

    def classes(self) -> list[str]:
        """Class sources the parts need written before Features (column kinds' own classes)."""
        return [text for source in self.sources for text in source.classes]

    # --- the Features module ---------------------------------------------------------------
    def features_init(self) -> list[str]:
        lines = []
        if self.used_ids:
            lines += comment("One table per emb_id, shared by every column that names it.", 8)
            lines += [
                "        self.embeddings = FeatureEmbeddings(",
                f"            EMBEDDINGS, {py(tuple(self.used_ids))}, init, "
                f"dropout={self.config.embedding_dropout!r}",
                "        )",
            ]
        for source in self.sources:
            lines += source.init
        return lines

    def features_forward(self) -> list[str]:
        lines = ["        parts = ["]
        for source in self.sources:
            lines += source.forward
            self.diagram += source.diagram
            self.size += whole(source.width)
        lines.append("        ]")
        return lines

    def features_class(self) -> list[str]:
        shape = "(B, T, {})" if self.layout.is_sequence else "(B, {})"
        init = self.features_init()
        forward = self.features_forward()
        lines = [
            "class Features(nn.Module):",
            f'    """The LF columns -> one vector of {self.size} values per '
            f'{"token" if self.layout.is_sequence else "instance"}."""',
            "",
            *(
                [
                    "    def __init__(",
                    "        self, init: dict[str, np.ndarray] | None, alphabet: tuple[str, ...]",
                    "    ) -> None:",
                ]
                if self.shape
                else ["    def __init__(self, init: dict[str, np.ndarray] | None) -> None:"]
            ),
            "        super().__init__()",
            *init,
            "        self.output_size = " + str(self.size),
            "",
            "    def forward(self, batch: Batch) -> torch.Tensor:",
            f'        """{shape.format(self.size)}."""',
        ]
        if any(source.uses_mask for source in self.sources):
            lines.append(
                "        mask = batch.mask  # (B, T): True at real tokens"
                if self.layout.is_sequence
                else "        mask = None  # per instance: no sequence mask"
            )
        lines += forward
        lines.append("        return torch.cat(parts, dim=-1)")
        return lines
