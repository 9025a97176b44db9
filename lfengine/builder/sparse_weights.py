"""SparseWeights: a label-weight row per sparse feature key that training saw, for the classical
models that sit beside a network (linear_crf.py, linear_text.py).

A feature is a 64-bit key (a salt naming its kind in the high bits, its value below). The keys
seen in training are kept sorted in a buffer with one weight row each; a key not among them adds
nothing. Everything is fitted, nothing is trained by the network's optimizer: the weights are
frozen parameters (they live in the state dict, and AdamW skips them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger("lfengine.trainer")

VALUE_BITS = 40  # a key: salt << 40 | value, value < 2^40
VALUE_MASK = 2**VALUE_BITS - 1
#: Most weights (features x labels) a classical model keeps: beyond them the rarest features are
#: dropped, so that its fit (L-BFGS keeps about 25 copies, in FIT_DTYPE: 1.6 GiB at the cap) stays
#: within about 2 GiB on the largest sets; the shared files and the generated development sets
#: stay well below (bench/bench_linear_fit.py).
MAX_WEIGHTS = 2**23
MIN_KEYS = 2**16  # kept whatever the number of labels
#: what a fit computes in: L-BFGS ends at its iteration cap, short of the optimum, so float32
#: rounding (which differs between CPUs) changed the fitted weights, and with them the model's
#: predictions, by 1e-3 from one machine to another; in float64 the fits agree to 1e-11
FIT_DTYPE = torch.float64


#: asked before each pass of a fit over the data: true once training should stop (stop_check)
_stop_requested: ContextVar[Callable[[], object] | None] = ContextVar("stop_requested", default=None)


class FitStopped(Exception):
    """Training was asked to stop (cancel, stop file, Ctrl-C) while a classical model was fitted."""


@contextmanager
def stop_check(requested: Callable[[], object] | None) -> Iterator[None]:
    """Within it, a fit asks ``requested()`` before each pass over the data and ends once it is
    true: a cancel takes effect at once, not after a fit of up to a minute (bench/bench_cancel.py)."""
    token = _stop_requested.set(requested)
    try:
        yield
    finally:
        _stop_requested.reset(token)


def salted(values: torch.Tensor, salt: int) -> torch.Tensor:
    """Keys of these non-negative values for the feature kind ``salt`` (>= 1)."""
    return (values.long() & VALUE_MASK) | (salt << VALUE_BITS)


def frozen(values: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(values, requires_grad=False)


class SparseWeights(nn.Module):
    """Sorted feature ``keys`` with a row of ``weights`` each, and label biases."""

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.register_buffer("keys", torch.zeros(0, dtype=torch.long))
        self.weights = frozen(torch.zeros(0, num_labels))
        self.output_size = num_labels

    @property
    def fitted(self) -> bool:
        return self.keys.numel() > 0

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # As many keys and weight rows as features training saw: take the stored number when
        # the two agree (1-D int64 keys, one row of label weights each); anything else is left
        # to the strict loader, which reports the mismatch.
        keys, weights = state_dict.get(prefix + "keys"), state_dict.get(prefix + "weights")
        if (
            isinstance(keys, torch.Tensor)
            and isinstance(weights, torch.Tensor)
            and keys.dtype == torch.long
            and keys.dim() == 1
            and weights.shape == (len(keys), self.output_size)
        ):
            self.keys = torch.empty_like(keys, device=self.keys.device)
            self.weights = frozen(self.weights.new_empty(weights.shape))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forget(self) -> None:
        """Back to unfitted: predictions leave this model out, and a resumed run fits it again."""
        self.keys = self.keys[:0]
        self.weights = frozen(self.weights.new_zeros(0, self.output_size))

    def minimise_unless_stopped(self, what: str, *args: Any) -> float | None:
        """``minimise(*args)``; None, with this model unfitted, when training is asked to stop."""
        try:
            return minimise(*args)
        except FitStopped:
            self.forget()
            log.info("%s not fitted: training was asked to stop during its fit", what)
            return None

    def lookup(self, keys: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight rows of these feature keys, and the mask of those present that training saw."""
        if not len(self.keys):
            return torch.zeros_like(keys), present & False
        rows = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        return rows, present & (self.keys[rows] == keys)

    def learn_keys(self, features: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Keep the keys present in these (keys, present) pairs, within MAX_WEIGHTS weights (the
        most frequent keys; ties by key): one weight row each, zeroed."""
        found = [keys[present] for keys, present in features]
        most = max(MIN_KEYS, MAX_WEIGHTS // self.output_size)
        if not found:
            self.keys = self.keys[:0]
        else:
            self.keys, counts = torch.unique(torch.cat(found), return_counts=True)
            if len(self.keys) > most:
                order = torch.sort(counts, descending=True, stable=True).indices[:most]
                self.keys = torch.sort(self.keys[order]).values
        self.weights = frozen(self.weights.new_zeros(len(self.keys), self.output_size))


def bag_sums(rows: torch.Tensor, known: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(..., C) sums of the ``table`` rows of the known features of each (..., K) bag, without
    building a (..., K, C) tensor."""
    width = rows.shape[-1]
    if not width:
        return table.new_zeros((*rows.shape[:-1], table.shape[-1]))
    weights = known.reshape(-1, width).to(table.dtype)
    sums = nn.functional.embedding_bag(rows.reshape(-1, width), table, per_sample_weights=weights, mode="sum")
    return sums.view(*rows.shape[:-1], -1)


def blocks(sizes: np.ndarray, budget: int) -> list[np.ndarray]:
    """The items in blocks of similar sizes (little padding), each at most ``budget`` padded
    slots (or one item), for a full-batch objective that never holds all the data padded."""
    order = np.argsort(sizes, kind="stable")
    found, start = [], 0
    for end in range(1, len(order) + 1):
        if end == len(order) or (end + 1 - start) * max(int(sizes[order[end]]), 1) > budget:
            found.append(order[start:end])
            start = end
    return found


def minimise(
    parameters: Sequence[torch.Tensor],
    block_losses: Callable[[], Iterator[torch.Tensor]],
    penalty: Callable[[], torch.Tensor],
    max_iterations: int,
) -> float:
    """L-BFGS (strong Wolfe line search) on a full-batch objective: the sum of the losses of the
    data's blocks (each block's graph is freed by its own backward pass) and a penalty. Returns
    the objective at the last point L-BFGS tried, where it stopped."""
    optimizer = torch.optim.LBFGS(
        parameters, lr=1, max_iter=max_iterations, history_size=10, line_search_fn="strong_wolfe"
    )
    last = [0.0]
    requested = _stop_requested.get()

    def terms() -> Iterator[torch.Tensor]:
        yield from block_losses()
        yield penalty()

    def objective() -> torch.Tensor:
        if requested is not None and requested():
            raise FitStopped
        optimizer.zero_grad()
        total = 0.0
        for loss in terms():
            loss.backward()  # one block's graph at a time
            total += float(loss.detach())
        last[0] = total
        return torch.tensor(total)

    with torch.enable_grad():
        optimizer.step(objective)
    return last[0]
