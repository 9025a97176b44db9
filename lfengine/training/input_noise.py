"""Noise put into training batches on purpose, so that the model learns to do without inputs
that application will lack: hidden previous labels and unknown words, and whatever noise a
registered column kind puts into its own part. Each part of the data puts in its own
(``DataPart.noise``, lfengine/data/parts.py), in part order."""

from __future__ import annotations

from typing import Any

import torch

from lfengine.builder.config import ModelConfig
from lfengine.data.codec import Codec
from lfengine.data.encoding import Encoded
from lfengine.data.parts import data_parts
from lfengine.data.rows import rare_rows


class InputNoise:
    """Applies every part's noise to a training batch, in place (``apply``)."""

    def __init__(self, codec: Codec, config: ModelConfig, train: Encoded, device: torch.device) -> None:
        self.codec = codec
        self.config = config
        self.parts = data_parts(codec)
        rare = rare_rows(codec, train) if config.unk_replace > 0 else {}
        #: per emb_id of a token-string column, its rare-row mask
        self.rare = {emb_id: torch.from_numpy(mask).to(device) for emb_id, mask in rare.items()}

    def apply(self, batch: Any) -> None:
        for part in self.parts:
            part.noise(batch, self.config, self.rare)
