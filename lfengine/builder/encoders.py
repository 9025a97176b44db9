"""Encoders of variable-length lists (token lists of N columns, characters of a word).

Every encoder takes embedded, right-padded input (N, L, D) plus the real lengths (N,) and
returns (N, output_size). Padding never changes a result (the old wrapper's CNN pooled and
batch-normalised over padding, and its LSTM read the last padded step: defects C8, C9); an
empty list gives a zero vector; a list shorter than a kernel still works.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lfengine.builder.config import LIST_ENCODERS
from lfengine.builder.dropout import Dropout
from lfengine.errors import OptionError


def length_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(N,) lengths -> (N, steps) True at real positions."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


class MaskedCnnEncoder(nn.Module):
    """Conv1d per kernel width -> ReLU -> max over the real positions; no batch norm.

    The convolution is "full" (padding k-1 on both sides): every window that overlaps the list
    counts, so a list shorter than the kernel still yields features, and a window's input is the
    same zeros whether the padding came from the batch or from the convolution.
    """

    def __init__(self, input_size: int, kernels: tuple[int, ...], channels: int) -> None:
        super().__init__()
        self.kernels = tuple(kernels)
        self.convs = nn.ModuleList(nn.Conv1d(input_size, channels, k, padding=k - 1) for k in self.kernels)
        self.output_size = channels * len(self.kernels)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        n, steps, _ = inputs.shape
        if steps == 0:  # every list of the batch is empty
            return inputs.new_zeros((n, self.output_size))
        mask = length_mask(lengths, steps)
        x = inputs.masked_fill(~mask.unsqueeze(-1), 0.0).transpose(1, 2)  # (N, D, L)
        pooled = []
        for kernel, conv in zip(self.kernels, self.convs, strict=True):
            out = torch.relu(conv(x))  # (N, C, L + k - 1)
            valid = length_mask(lengths + kernel - 1, out.shape[-1]) & (lengths > 0).unsqueeze(1)
            out = out.masked_fill(~valid.unsqueeze(1), float("-inf"))
            pooled.append(out.max(dim=-1).values)
        features = torch.cat(pooled, dim=-1)
        return features.masked_fill((lengths == 0).unsqueeze(1), 0.0)


def _packed(inputs: torch.Tensor, lengths: torch.Tensor) -> torch.nn.utils.rnn.PackedSequence:
    """Right-padded lists packed for an LSTM; empty lists run as length 1 (masked by the caller)."""
    return pack_padded_sequence(inputs, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)


class MaskedLstmEncoder(nn.Module):
    """BiLSTM over packed lists; the output is the final state of each direction at the real end."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_size = 2 * hidden_size

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        n, steps, _ = inputs.shape
        if steps == 0 or n == 0:
            return inputs.new_zeros((n, self.output_size))
        _, (hidden, _) = self.lstm(_packed(inputs, lengths))  # (2, N, H), back in input order
        features = torch.cat([hidden[0], hidden[1]], dim=-1)
        return features.masked_fill((lengths == 0).unsqueeze(1), 0.0)


class MaskedMeanEncoder(nn.Module):
    """Mean of the real vectors (a bag of embeddings): cheap, order-free."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.output_size = input_size

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = length_mask(lengths, inputs.shape[1]).unsqueeze(-1)
        total = inputs.masked_fill(~mask, 0.0).sum(dim=1)
        return total / lengths.clamp(min=1).unsqueeze(1).to(total.dtype)


class MaskedAttentionEncoder(nn.Module):
    """BiLSTM over packed lists, then attention pooling (Yang et al. 2016, one level).

    Each position's state gets a score v . tanh(W h); the softmax over the real positions
    weights the states. Unlike the final states, every word can contribute directly, and the
    weights show which words decided.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * hidden_size, 2 * hidden_size)
        self.score = nn.Linear(2 * hidden_size, 1, bias=False)
        self.output_size = 2 * hidden_size

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        n, steps, _ = inputs.shape
        if steps == 0 or n == 0:
            return inputs.new_zeros((n, self.output_size))
        states, _ = self.lstm(_packed(inputs, lengths))
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=steps)  # (N, L, 2H)
        scores = self.score(torch.tanh(self.project(states))).squeeze(-1)  # (N, L)
        mask = length_mask(lengths.clamp(min=1), steps)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        pooled = (weights.unsqueeze(-1) * states).sum(dim=1)
        return pooled.masked_fill((lengths == 0).unsqueeze(1), 0.0)


def make_list_encoder(
    kind: str, input_size: int, kernels: tuple[int, ...], channels: int, lstm_hidden: int
) -> nn.Module:
    if kind == "cnn":
        return MaskedCnnEncoder(input_size, kernels, channels)
    if kind == "lstm":
        return MaskedLstmEncoder(input_size, lstm_hidden)
    if kind == "mean":
        return MaskedMeanEncoder(input_size)
    if kind == "attention":
        return MaskedAttentionEncoder(input_size, lstm_hidden)
    raise OptionError(f"list_encoder must be one of {', '.join(LIST_ENCODERS)}, got {kind!r}")


def list_encoder_size(
    kind: str, input_size: int, kernels: tuple[int, ...], channels: int, lstm_hidden: int
) -> int:
    """Output size of ``make_list_encoder`` with the same arguments, without building it."""
    sizes = {"cnn": channels * len(kernels), "lstm": 2 * lstm_hidden, "attention": 2 * lstm_hidden}
    return sizes.get(kind, input_size)  # "mean": the embedding size


def encode_positions(
    encoder: nn.Module, inputs: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Apply a list encoder to the real positions of a sequence batch only.

    inputs (B, T, L, D), lengths (B, T), mask (B, T) -> (B, T, output_size), zeros at padding.
    """
    b, t = mask.shape
    flat_inputs = inputs.reshape(b * t, *inputs.shape[2:])
    flat_lengths = lengths.reshape(b * t)
    real = mask.reshape(b * t).nonzero(as_tuple=True)[0]
    out = inputs.new_zeros((b * t, encoder.output_size))
    if real.numel() > 0:
        out[real] = encoder(flat_inputs[real], flat_lengths[real])
    return out.reshape(b, t, encoder.output_size)


class CharEncoder(nn.Module):
    """Character CNN: one vector per token from its characters (Ma & Hovy 2016 style).

    Character ids are right-padded with 0 (PAD), so a word's length is its count of non-zero
    ids; a word of 0 characters (padding, empty string) gets a zero vector.
    """

    def __init__(self, vocab_size: int, dims: int, filters: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dims, padding_idx=0)
        self.dropout = Dropout(dropout)
        self.cnn = MaskedCnnEncoder(dims, (kernel,), filters)
        self.output_size = self.cnn.output_size

    def forward(self, chars: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(..., W) character ids -> (..., output_size); with a (B, T) mask only real tokens run."""
        lengths = (chars != 0).sum(dim=-1)
        vectors = self.dropout(self.embedding(chars))
        if mask is not None:
            return encode_positions(self.cnn, vectors, lengths, mask)
        lead = chars.shape[:-1]
        flat = self.cnn(vectors.reshape(-1, *vectors.shape[-2:]), lengths.reshape(-1))
        return flat.reshape(*lead, self.output_size)


#: Word-shape flags computed from the characters of a token (see WordShape).
SHAPE_FLAGS = (
    "has_upper",
    "all_upper",
    "initial_upper",
    "has_lower",
    "has_digit",
    "all_digit",
    "has_punctuation",
    "has_hyphen",
    "single_char",
)


class WordShape(nn.Module):
    """Casing and shape of each token as 0/1 flags (SHAPE_FLAGS), from its character ids.

    The classic NER signal (Capitalised, ALLCAPS, digits, hyphens) made explicit, so that the
    tagger need not learn it from the character CNN. No parameters: the character classes come
    from the alphabet of the character vocabulary, held in buffers not stored with the weights.
    """

    def __init__(self, alphabet: tuple[str, ...], vocab_size: int = 0) -> None:
        """``vocab_size``: ids beyond the alphabet (a layout that names no characters) get no class."""
        super().__init__()
        classes = [(False, False, False, False, False)] * 2  # PAD and OOV: no class
        classes += [
            (ch.isupper(), ch.islower(), ch.isdigit(), not ch.isalnum() and not ch.isspace(), ch == "-")
            for ch in alphabet[2:]
        ]
        classes += [(False, False, False, False, False)] * (vocab_size - len(classes))
        table = torch.tensor(classes, dtype=torch.bool).reshape(len(classes), 5)
        self.register_buffer("char_classes", table, persistent=False)
        self.has_case = any(upper for upper, *_ in classes)  # from the list: meta-device safe
        self.output_size = len(SHAPE_FLAGS)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """(..., W) character ids -> (..., 9) float flags; zeros for padding and empty tokens."""
        if chars.shape[-1] == 0:
            return torch.zeros((*chars.shape[:-1], self.output_size), device=chars.device)
        real = chars != 0
        lengths = real.sum(dim=-1)
        cls = self.char_classes[chars]  # (..., W, 5)
        upper, lower, digit, punct, hyphen = cls.unbind(-1)
        nonempty = lengths > 0
        flags = [
            upper.any(-1),
            nonempty & upper.any(-1) & ~lower.any(-1),
            upper[..., 0],
            lower.any(-1),
            digit.any(-1),
            nonempty & (digit | ~real).all(-1),
            punct.any(-1),
            hyphen.any(-1),
            lengths == 1,
        ]
        return torch.stack(flags, dim=-1).to(torch.float32)
