"""The old wrapper's auto-built networks, as plain torch modules fed from lfengine's Batch.

Shapes follow reference-wrapper.md §3.2-§3.4 and §3.6: the classifier of per-column
embeddings and N-column CNNs (kernels 3/4/5 x 100,
padding K//2, BatchNorm1d, ReLU, max over time, Dropout 0.6) under a single Linear + LogSoftmax,
and the tagger of per-column embeddings (shared per emb_id) concatenated into a unidirectional
LSTM(D, min(200, D)) + Linear + LogSoftmax. Both train with NLLLoss and Adam(lr 1e-3), as in
§3.7. They exist only so that bench_speed.py can time lfengine against the old design.
"""

from __future__ import annotations

import torch
from torch import nn

from lfengine.data.batch import IGNORE_INDEX, Batch, InputLayout


class OldCnnBranch(nn.Module):
    """One kernel width of the old LayerCNN (§3.2); pads and pools over padding as it did."""

    def __init__(self, dims: int, kernel: int, channels: int = 100, dropout: float = 0.6) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dims, channels, kernel, padding=kernel // 2)
        self.norm = nn.BatchNorm1d(channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, L) -> (B, channels)
        return self.dropout(torch.relu(self.norm(self.conv(x))).max(dim=-1).values)


class OldClassifier(nn.Module):
    """The old classification network (§3.3): floats -> Linear(F, F) + ELU; each index column its
    shared embedding; each N column Embedding -> CNN 3/4/5 x 100; concatenated (floats, index,
    indexlist) -> a single Linear(total, C). class-ngram-sp1: Embedding -> CNN -> Linear(300, C);
    class-window-pos1: 26 window lookups -> Linear(total, 17)."""

    def __init__(self, layout: InputLayout) -> None:
        super().__init__()
        if layout.is_sequence:
            raise ValueError("OldClassifier is for classification, not sequences")
        used = [e for _, e in layout.nominal] + [e for _, e in layout.lists]
        self.keys = {emb_id: f"emb_{i}" for i, emb_id in enumerate(dict.fromkeys(used))}
        self.tables = nn.ModuleDict(
            {
                key: nn.Embedding(layout.embeddings[e].vocab_size, layout.embeddings[e].dims, padding_idx=0)
                for e, key in self.keys.items()
            }
        )
        self.columns = [emb_id for _, emb_id in layout.nominal]
        self.list_ids = [emb_id for _, emb_id in layout.lists]
        floats = len(layout.numeric)
        self.floats = nn.Linear(floats, floats) if floats else None
        self.branches = nn.ModuleList(
            nn.ModuleList(OldCnnBranch(layout.embeddings[e].dims, k) for k in (3, 4, 5))
            for e in self.list_ids
        )
        total = floats + sum(layout.embeddings[e].dims for e in self.columns) + 300 * len(self.list_ids)
        self.output = nn.Linear(total, layout.num_labels)

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = [nn.functional.elu(self.floats(batch.numeric.float()))] if self.floats is not None else []
        parts += [self.tables[self.keys[e]](batch.nominal[..., j]) for j, e in enumerate(self.columns)]
        for k, (emb_id, branches) in enumerate(zip(self.list_ids, self.branches)):
            x = self.tables[self.keys[emb_id]](batch.lists[k]).transpose(1, 2)
            parts += [branch(x) for branch in branches]
        return torch.log_softmax(self.output(torch.cat(parts, dim=-1)), dim=-1)


class OldSequenceTagger(nn.Module):
    """seq-pos1 in the old wrapper: per-column embeddings -> LSTM(D, min(200, D)) -> Linear(C)."""

    def __init__(self, layout: InputLayout) -> None:
        super().__init__()
        if not layout.is_sequence or layout.lists:
            raise ValueError("OldSequenceTagger expects sequences of nominal and numeric columns")
        self.columns = [emb_id for _, emb_id in layout.nominal]
        self.tables = nn.ModuleDict()
        for emb_id in dict.fromkeys(self.columns):
            info = layout.embeddings[emb_id]
            self.tables[f"emb_{len(self.tables)}"] = nn.Embedding(info.vocab_size, info.dims, padding_idx=0)
        self.keys = {emb_id: f"emb_{i}" for i, emb_id in enumerate(dict.fromkeys(self.columns))}
        size = sum(layout.embeddings[e].dims for e in self.columns) + len(layout.numeric)
        hidden = min(200, size)
        self.lstm = nn.LSTM(size, hidden, batch_first=True)
        self.output = nn.Linear(hidden, layout.num_labels)

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = [self.tables[self.keys[e]](batch.nominal[..., j]) for j, e in enumerate(self.columns)]
        parts.append(batch.numeric.float())
        encoded, _ = self.lstm(torch.cat(parts, dim=-1))  # no packing: padding runs through too
        return torch.log_softmax(self.output(encoded), dim=-1)


def old_network(layout: InputLayout) -> nn.Module:
    return OldSequenceTagger(layout) if layout.is_sequence else OldClassifier(layout)


def old_loss(network: nn.Module, batch: Batch) -> torch.Tensor:
    """NLLLoss over (B*T, C) for sequences, (B, C) otherwise; padded targets are ignored."""
    log_probs = network(batch)
    return nn.functional.nll_loss(
        log_probs.reshape(-1, log_probs.shape[-1]), batch.targets.reshape(-1), ignore_index=IGNORE_INDEX
    )


def old_optimizer(network: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam([p for p in network.parameters() if p.requires_grad], lr=1e-3)
