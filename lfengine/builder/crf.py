"""Linear-chain CRF with start and end transitions, vectorised over the batch.

Scores: emissions (B, T, C) from the tagger, ``transitions[i, j]`` for label i followed by j,
``start[j]`` / ``end[i]`` for the first / last label. Masks are prefixes (B, T) (True at real
positions); a sequence of length 0 has log-likelihood 0, an empty path and no marginals.
Padded steps carry the forward scores unchanged, so padding never changes a result.
With chunk labels (``X|B``, ``X|I``, ``O``; see ``chunk_transitions``) the CRF can be built
constrained: a path that opens ``X|I`` without an open X (at the start, after ``O`` or after a
chunk of another type) scores ``-inf`` when decoding and ``FORBIDDEN`` in the training loss, so
the tagger never emits a label that GATE would silently drop.
Every method computes in the dtype of the emissions it is given: the tagger runs inference in
float64, where forward-backward's long sums of exponentials no longer round differently with
the batch's length or the CPU's instruction set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lfengine.builder.base import Prediction
from lfengine.data.batch import IGNORE_INDEX

#: Score of a forbidden transition in the training loss: finite, so that the gradient of a
#: label no allowed path reaches is 0 rather than NaN; far below any real path's score.
FORBIDDEN = -1e4


def chunk_transitions(labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(allowed (C, C), allowed_start (C,)) for LF chunk labels, as GATE reads them.

    A label is ``O`` or parts ``Type|B`` / ``Type|I`` joined by ``,`` (overlapping chunks). Label
    j may follow label i when every type j continues (``X|I``) is in i (as ``X|B`` or ``X|I``),
    and may start a sequence when it continues nothing. Anything else is treated like ``O``.
    If no label may start (an odd label set), the start is left free.
    """
    continued, present = [], []
    for label in labels:
        parts = [part.split("|") for part in label.split(",")] if label != "O" else []
        pairs = [p for p in parts if len(p) == 2]
        continued.append({kind for kind, code in pairs if code == "I"})
        present.append({kind for kind, _ in pairs})
    allowed = torch.tensor([[cont <= have for cont in continued] for have in present], dtype=torch.bool)
    start = torch.tensor([not cont for cont in continued], dtype=torch.bool)
    if not bool(start.any()):
        start = torch.ones_like(start)
    return allowed.reshape(len(labels), len(labels)), start


def viterbi(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    transitions: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """(B, T) best label paths under these scores (``-inf`` forbids a move); IGNORE_INDEX at padding."""
    batch, steps, labels = emissions.shape
    if steps == 0:
        return torch.zeros((batch, 0), dtype=torch.long, device=emissions.device)
    score = start + emissions[:, 0]
    identity = torch.arange(labels, device=emissions.device).expand(batch, labels)
    backpointers = []
    for t in range(1, steps):
        candidates = score.unsqueeze(2) + transitions  # (B, from, to)
        best, pointer = candidates.max(dim=1)
        real = mask[:, t].unsqueeze(1)
        score = torch.where(real, best + emissions[:, t], score)
        backpointers.append(torch.where(real, pointer, identity))  # padding: keep the label
    best_last = (score + end).argmax(dim=1)
    path = [best_last]
    for pointer in reversed(backpointers):
        path.append(pointer.gather(1, path[-1].unsqueeze(1)).squeeze(1))
    path.reverse()
    return torch.stack(path, dim=1).masked_fill(~mask, IGNORE_INDEX)


class Crf(nn.Module):
    def __init__(self, num_labels: int, chunk_labels: Sequence[str] | None = None) -> None:
        """``chunk_labels``: the label names, to forbid invalid chunk transitions (see the module
        docstring); None leaves every transition free. The masks are derived, not stored."""
        super().__init__()
        self.num_labels = num_labels
        self.output_size = num_labels
        # Small random start (as is usual): all-zero transitions would make every path tie.
        self.transitions = nn.Parameter(torch.empty(num_labels, num_labels).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_labels).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_labels).uniform_(-0.1, 0.1))
        self.constrained = chunk_labels is not None
        if chunk_labels is not None:
            if len(chunk_labels) != num_labels:
                raise ValueError(f"{len(chunk_labels)} chunk labels for a CRF over {num_labels} labels")
            allowed, allowed_start = chunk_transitions(chunk_labels)
        else:
            allowed = torch.ones((num_labels, num_labels), dtype=torch.bool)
            allowed_start = torch.ones(num_labels, dtype=torch.bool)
        self.register_buffer("allowed", allowed, persistent=False)
        self.register_buffer("allowed_start", allowed_start, persistent=False)

    def _scores(
        self, emissions: torch.Tensor, forbidden: float = float("-inf")
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """transitions, start and end in the emissions' dtype, forbidden moves scored ``forbidden``."""
        dtype = emissions.dtype
        return self._constrained(
            self.transitions.to(dtype), self.start.to(dtype), self.end.to(dtype), forbidden
        )

    def constraint_scores(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """transitions, start and end scoring 0 for every move, ``-inf`` for those the chunk
        constraints forbid: to decode other per-token scores under the same constraints."""
        zeros = (torch.zeros_like(p, dtype=dtype) for p in (self.transitions, self.start, self.end))
        return self._constrained(*zeros, float("-inf"))

    def _constrained(
        self, transitions: torch.Tensor, start: torch.Tensor, end: torch.Tensor, forbidden: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.constrained:
            transitions = transitions.masked_fill(~self.allowed, forbidden)
            start = start.masked_fill(~self.allowed_start, forbidden)
        return transitions, start, end

    def _forward_scores(
        self, emissions: torch.Tensor, mask: torch.Tensor, forbidden: float = float("-inf")
    ) -> list[torch.Tensor]:
        """alpha_t (B, C): log-sum of the scores of all paths ending in each label at step t."""
        transitions, start, _ = self._scores(emissions, forbidden)
        alpha = start + emissions[:, 0]
        alphas = [alpha]
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)
            alphas.append(alpha)
        return alphas

    def log_partition(
        self, emissions: torch.Tensor, mask: torch.Tensor, forbidden: float = FORBIDDEN
    ) -> torch.Tensor:
        """(B,) log Z; 0 for empty sequences."""
        if emissions.shape[1] == 0:
            return emissions.new_zeros(emissions.shape[0])
        alpha = self._forward_scores(emissions, mask, forbidden)[-1]
        log_z = torch.logsumexp(alpha + self._scores(emissions)[2], dim=1)
        return log_z.masked_fill(~mask[:, 0], 0.0)

    def path_score(
        self, emissions: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, forbidden: float = FORBIDDEN
    ) -> torch.Tensor:
        """(B,) unnormalised score of the given label paths (labels at padding are ignored)."""
        batch, steps, _ = emissions.shape
        if steps == 0:
            return emissions.new_zeros(batch)
        transitions, start, end = self._scores(emissions, forbidden)
        labels = labels.masked_fill(~mask, 0)
        weights = mask.to(emissions.dtype)
        emitted = emissions.gather(2, labels.unsqueeze(2)).squeeze(2)
        score = (emitted * weights).sum(dim=1)
        if steps > 1:
            moves = transitions[labels[:, :-1], labels[:, 1:]]
            score = score + (moves * weights[:, 1:]).sum(dim=1)
        lengths = mask.sum(dim=1)
        last = labels.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        score = score + (start[labels[:, 0]] + end[last]) * weights[:, 0]
        return score

    def neg_log_likelihood(
        self, emissions: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """(B,) -log p(labels | input) per sequence; 0 for empty sequences.

        A gold path the constraints forbid (a chunk cut by a sentence boundary starts with
        ``X|I``) is scored without them, so that bad data cost an ordinary loss, not ~1e4."""
        nll = self.log_partition(emissions, mask) - self.path_score(emissions, labels, mask)
        if not self.constrained:
            return nll
        invalid = self.forbidden_paths(labels, mask)
        if bool(invalid.any()):
            free = self._free_nll(emissions[invalid], labels[invalid], mask[invalid])
            nll = nll.masked_scatter(invalid, free)
        return nll

    def _free_nll(self, emissions: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The unconstrained -log p(labels | input)."""
        self.constrained = False
        try:
            return self.log_partition(emissions, mask) - self.path_score(emissions, labels, mask)
        finally:
            self.constrained = True

    def forbidden_paths(self, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) True for the label paths that take a transition the constraints forbid."""
        batch, steps = labels.shape
        if steps == 0 or not self.constrained:
            return torch.zeros(batch, dtype=torch.bool, device=labels.device)
        labels = labels.masked_fill(~mask, 0)
        bad = ~self.allowed_start[labels[:, 0]] & mask[:, 0]
        if steps > 1:
            moves = ~self.allowed[labels[:, :-1], labels[:, 1:]] & mask[:, 1:]
            bad = bad | moves.any(dim=1)
        return bad

    def prediction(self, emissions: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> Prediction:
        """The Viterbi path, with the marginal probability of each chosen label as its confidence.

        Forward-backward runs in float64 (see the module docstring)."""
        emissions = emissions.double()
        path = self.decode(emissions, mask)
        marginals = self.marginals(emissions, mask)
        chosen = marginals.gather(2, path.clamp(min=0).unsqueeze(2)).squeeze(2)
        return Prediction(
            label_ids=path,
            confidence=chosen.masked_fill(~mask, 0.0),
            distribution=marginals,
            lengths=lengths,
        )

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, C) p(y_t = c | input) by forward-backward; rows sum to 1 at real positions, 0 at padding."""
        batch, steps, labels = emissions.shape
        if steps == 0:
            return emissions.new_zeros((batch, 0, labels))
        alphas = self._forward_scores(emissions, mask)
        transitions, _, end_scores = self._scores(emissions)
        lengths = mask.sum(dim=1)
        end = end_scores.expand(batch, labels)
        beta = end  # beta_t: log-sum over continuations after step t, including the end score
        betas = [beta] * steps
        for t in range(steps - 2, -1, -1):
            step = torch.logsumexp(transitions + (emissions[:, t + 1] + beta).unsqueeze(1), dim=2)
            is_last = (lengths - 1 == t).unsqueeze(1)
            beta = torch.where(is_last, end, torch.where(mask[:, t + 1].unsqueeze(1), step, beta))
            betas[t] = beta
        log_z = torch.logsumexp(alphas[-1] + end_scores, dim=1)
        scores = torch.stack(alphas, dim=1) + torch.stack(betas, dim=1) - log_z.view(batch, 1, 1)
        return scores.exp() * mask.unsqueeze(2).to(emissions.dtype)

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) Viterbi best paths; IGNORE_INDEX at padding."""
        return viterbi(emissions, mask, *self._scores(emissions))
