"""Noise put into training batches on purpose, so that the model learns to do without inputs
that application will lack: hidden previous labels and unknown words; a registered column kind
puts in its own (``ColumnKind.noise``, lfengine/data/kinds.py)."""

from __future__ import annotations

from typing import Any

import torch

from lfengine.builder.config import ModelConfig
from lfengine.data.codec import Codec
from lfengine.data.encoding import Encoded
from lfengine.data.kinds import kind_named
from lfengine.data.rows import rare_rows


class InputNoise:
    """Applies both kinds of noise to a training batch, in place (``apply``)."""

    def __init__(self, codec: Codec, config: ModelConfig, train: Encoded, device: torch.device) -> None:
        self.codec = codec
        self.config = config
        rare = rare_rows(codec, train) if config.unk_replace > 0 else {}
        # emb_id's rare-row mask per token column and per token list
        self.rare = {
            j: torch.from_numpy(rare[codec.nominal[j].emb_id]).to(device)
            for j in codec.token_columns
            if codec.nominal[j].emb_id in rare
        }
        self.rare_lists = {
            k: torch.from_numpy(rare[codec.lists[k].emb_id]).to(device)
            for k in codec.token_lists
            if codec.lists[k].emb_id in rare
        }

    def apply(self, batch: Any) -> None:
        self.blank_previous_labels(batch)
        self.unknown_words(batch)
        self.kind_noise(batch)

    def kind_noise(self, batch: Any) -> None:
        """Each registered column kind's own noise on its part of the batch."""
        for name, settings in self.codec.kinds.items():
            if name in batch.kinds:
                lengths = batch.kind_lengths.get(name)
                batch.kinds[name] = kind_named(name).noise(settings, batch.kinds[name], lengths, self.config)

    def blank_previous_labels(self, batch: Any) -> None:
        """Hide previous-label columns (gate.LF.target) in a random share of the training items.

        GATE fills them with gold labels for training but leaves them empty when it applies a
        model (gate-plugin.md §8, item 8); a model that always saw them would lean on an input
        that never comes. Training without them part of the time teaches it to do without
        (defect C13); the share is the ``previous_label_dropout`` heuristic.
        """
        columns, rate = self.codec.previous_label_columns, self.config.previous_label_dropout
        if not columns or rate <= 0:
            return
        hide = torch.rand(batch.nominal.shape[:-1], device=batch.nominal.device) < rate
        part = batch.nominal[..., columns]
        batch.nominal[..., columns] = part.masked_fill(hide.unsqueeze(-1), 0)

    def unknown_words(self, batch: Any) -> None:
        """Feed some training tokens as OOV, so that the OOV row learns what an unseen word means:
        a rare (singleton) token with chance ``unk_replace`` (Lample et al. 2016), any token with
        chance ``word_dropout``. Only token-string columns; PAD (missing) stays PAD."""
        cfg, codec = self.config, self.codec
        if cfg.unk_replace <= 0 and cfg.word_dropout <= 0:
            return

        def replace(ids: torch.Tensor, rare: torch.Tensor | None, unknown: int) -> torch.Tensor:
            chance = torch.full(ids.shape, cfg.word_dropout, device=ids.device)
            if rare is not None:
                chance = torch.where(rare[ids], max(cfg.unk_replace, cfg.word_dropout), chance)
            hit = (torch.rand(ids.shape, device=ids.device) < chance) & (ids > unknown)
            return ids.masked_fill(hit, unknown)

        for j in codec.token_columns:
            unknown = codec.vocabs[codec.nominal[j].emb_id].unknown_index
            batch.nominal[..., j] = replace(batch.nominal[..., j], self.rare.get(j), unknown)
        for k in codec.token_lists:
            unknown = codec.vocabs[codec.lists[k].emb_id].unknown_index
            batch.lists[k] = replace(batch.lists[k], self.rare_lists.get(k), unknown)
