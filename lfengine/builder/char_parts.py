"""The parts of ``InputFeatures`` over the characters of each token (sequences only): the
character CNN, the word-shape flags and the hashed affix embeddings (see parts.py)."""

from __future__ import annotations

from typing import Any

from torch import nn

from lfengine.builder.affixes import AFFIX_BUCKETS, AFFIX_LENGTHS, AffixEmbeddings
from lfengine.builder.embeddings import FeatureEmbeddings
from lfengine.builder.encoders import SHAPE_FLAGS, CharEncoder, WordShape
from lfengine.builder.literals import comment, py, whole
from lfengine.builder.parts import FeaturePart, PartSource
from lfengine.data.batch import Batch, InputLayout
from lfengine.errors import ModelError, OptionError


class _CharPart(FeaturePart):
    """A part reading ``batch.chars``, the characters of the layout's character column."""

    #: what the part is, in the errors about batches without characters
    what: str = ""
    #: the setting that asks for the part, in the error about data without characters
    refusal: str = ""

    def __init__(self, layout: InputLayout, config: Any) -> None:
        if layout.chars is None or not layout.is_sequence:
            raise OptionError(f"{self.refusal} sequence data with a character column")
        self.layout, self.config, self.chars = layout, config, layout.chars

    def _source(
        self, about: str, construct: str, reads: str, diagram: str, module: str, **flags: bool
    ) -> PartSource:
        """The part in the ejected Features: ``self.<attr> = construct`` (after a comment
        ``about`` it) and ``self.<attr>(batch.chars...)`` in forward."""
        out = PartSource(width=self.width, imports={module: {construct.split("(")[0]}}, **flags)
        out.init += comment(about, 8)
        out.init.append(f"        self.{self.attr} = {construct}")
        out.forward += comment(reads, 12)
        mask = ", mask" if flags.get("uses_mask") else ""
        out.forward.append(f"            self.{self.attr}(batch.chars{mask}),")
        out.diagram.append(diagram)
        return out

    def _chars(self, batch: Batch) -> Any:
        if batch.chars is None:
            raise ModelError(f"the model uses {self.what} but the batch has no characters")
        return batch.chars


class CharsPart(_CharPart):
    """A character CNN: one vector per token from its characters."""

    attr = "chars"
    what = "characters"
    refusal = "char_encoder needs"

    @property
    def width(self) -> int:
        return self.config.char_filters

    def build(self, embeddings: FeatureEmbeddings) -> nn.Module:
        c = self.config
        size = self.chars.vocab_size
        return CharEncoder(size, c.char_dims, c.char_filters, c.char_kernel, c.embedding_dropout)

    def forward(self, module: Any, batch: Batch, mask: Any, embeddings: FeatureEmbeddings) -> list:
        if batch.chars is None:
            raise ModelError("the model uses characters but the batch has none")
        return [module(batch.chars, mask)]

    def source(self) -> PartSource:
        c, info = self.config, self.chars
        return self._source(
            f"characters of {py(info.column)} (up to {whole(info.max_chars)} per token): "
            f"{c.char_dims}-dim embeddings -> CNN width {c.char_kernel} x {c.char_filters} filters",
            f"CharEncoder({whole(info.vocab_size)}, dims={c.char_dims}, "
            f"filters={c.char_filters}, kernel={c.char_kernel}, dropout={c.embedding_dropout!r})",
            f"characters of {py(info.column)} -> {c.char_filters}",
            f"characters of {py(info.column)} -> char CNN -> {c.char_filters}",
            "lfengine.builder.encoders",
            uses_mask=True,
        )


class ShapePart(_CharPart):
    """Casing and shape flags of each token, from the character classes of the alphabet."""

    attr = "shape"
    what = "word shapes"
    refusal = "word-shape flags need"

    @property
    def width(self) -> int:
        return len(SHAPE_FLAGS)

    def build(self, embeddings: FeatureEmbeddings) -> nn.Module:
        return WordShape(self.chars.alphabet, self.chars.vocab_size)

    def forward(self, module: Any, batch: Batch, mask: Any, embeddings: FeatureEmbeddings) -> list:
        return [module(self._chars(batch))]

    def source(self) -> PartSource:
        reads = f"characters of {py(self.chars.column)} -> casing/shape flags -> {len(SHAPE_FLAGS)}"
        return self._source(
            f"{len(SHAPE_FLAGS)} casing/shape flags per token ({', '.join(SHAPE_FLAGS)}), from "
            "the character classes of the alphabet (no weights)",
            "WordShape(alphabet)",
            reads,
            reads,
            "lfengine.builder.encoders",
            uses_alphabet=True,
        )


class AffixPart(_CharPart):
    """Hashed prefix and suffix embeddings of each token (affixes.py)."""

    attr = "affixes"
    what = "affixes"
    refusal = "affix embeddings need"

    @property
    def width(self) -> int:
        return 2 * self.config.affix_dims

    def build(self, embeddings: FeatureEmbeddings) -> nn.Module:
        return AffixEmbeddings(self.config.affix_dims)

    def forward(self, module: Any, batch: Batch, mask: Any, embeddings: FeatureEmbeddings) -> list:
        return [module(self._chars(batch))]

    def source(self) -> PartSource:
        dims = whole(self.config.affix_dims)
        reads = f"characters of {py(self.chars.column)} -> prefix, suffix sums -> {2 * dims}"
        return self._source(
            f"1-{max(AFFIX_LENGTHS)} character prefixes and suffixes, hashed into "
            f"{AFFIX_BUCKETS} rows of {dims}",
            f"AffixEmbeddings({dims})",
            reads,
            reads,
            "lfengine.builder.affixes",
        )
