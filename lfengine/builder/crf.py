"""Linear-chain CRF with start and end transitions, vectorised over the batch.

Scores: emissions (B, T, C) from the tagger, ``transitions[i, j]`` for label i followed by j,
``start[j]`` / ``end[i]`` for the first / last label. Masks are prefixes (B, T) (True at real
positions); a sequence of length 0 has log-likelihood 0, an empty path and no marginals.
Padded steps carry the forward scores unchanged, so padding never changes a result.
Every method computes in the dtype of the emissions it is given: the tagger runs inference in
float64, where forward-backward's long sums of exponentials no longer round differently with
the batch's length or the CPU's instruction set.
"""

from __future__ import annotations

import torch
from torch import nn

from lfengine.builder.base import Prediction
from lfengine.data.batch import IGNORE_INDEX


class Crf(nn.Module):
    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.output_size = num_labels
        # Small random start (as is usual): all-zero transitions would make every path tie.
        self.transitions = nn.Parameter(torch.empty(num_labels, num_labels).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_labels).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_labels).uniform_(-0.1, 0.1))

    def _scores(self, emissions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """transitions, start and end in the emissions' dtype."""
        dtype = emissions.dtype
        return self.transitions.to(dtype), self.start.to(dtype), self.end.to(dtype)

    def _forward_scores(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """alpha_t (B, C): log-sum of the scores of all paths ending in each label at step t."""
        transitions, start, _ = self._scores(emissions)
        alpha = start + emissions[:, 0]
        alphas = [alpha]
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)
            alphas.append(alpha)
        return alphas

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) log Z; 0 for empty sequences."""
        if emissions.shape[1] == 0:
            return emissions.new_zeros(emissions.shape[0])
        alpha = self._forward_scores(emissions, mask)[-1]
        log_z = torch.logsumexp(alpha + self._scores(emissions)[2], dim=1)
        return log_z.masked_fill(~mask[:, 0], 0.0)

    def path_score(self, emissions: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) unnormalised score of the given label paths (labels at padding are ignored)."""
        batch, steps, _ = emissions.shape
        if steps == 0:
            return emissions.new_zeros(batch)
        transitions, start, end = self._scores(emissions)
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
        """(B,) -log p(labels | input) per sequence; 0 for empty sequences."""
        return self.log_partition(emissions, mask) - self.path_score(emissions, labels, mask)

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
        batch, steps, labels = emissions.shape
        if steps == 0:
            return torch.zeros((batch, 0), dtype=torch.long, device=emissions.device)
        transitions, start, end = self._scores(emissions)
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
