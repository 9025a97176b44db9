"""What a training run carries from one epoch to the next, and into a checkpoint for resume:
counters, the best result so far, the position inside an interrupted epoch, and the state of
every random generator training draws from.

All of it converts to plain values and tensors, so that a checkpoint loads with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lfengine.errors import ModelError


@dataclass
class TrainState:
    """Everything that changes during training; saved in the checkpoint for resume."""

    epoch: int = 0  # completed epochs
    batches: int = 0  # global batch counter
    instances: int = 0  # global instance counter
    best_score: float = -math.inf
    best_loss: float = math.inf
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # training time (wall) before the current run, for resumed runs
    cpu_seconds: float = 0.0

    def to_dict(self, seconds: float, cpu_seconds: float) -> dict[str, Any]:
        """The checkpoint's ``state``, with the training time up to now."""
        return {
            "epoch": self.epoch,
            "batches": self.batches,
            "instances": self.instances,
            "best_score": self.best_score if math.isfinite(self.best_score) else None,
            "best_loss": self.best_loss if math.isfinite(self.best_loss) else None,
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
        }

    @classmethod
    def from_dict(cls, s: dict[str, Any]) -> TrainState:
        return cls(
            epoch=s["epoch"],
            batches=s["batches"],
            instances=s["instances"],
            best_score=-math.inf if s["best_score"] is None else s["best_score"],
            best_loss=math.inf if s["best_loss"] is None else s["best_loss"],
            best_epoch=s["best_epoch"],
            best_metrics=s["best_metrics"],
            bad_epochs=s["bad_epochs"],
            history=s["history"],
            seconds=s.get("seconds", 0.0),
            cpu_seconds=s.get("cpu_seconds", 0.0),
        )


@dataclass
class EpochPosition:
    """Where in an epoch a stop signal ended training: enough to replay the rest exactly."""

    epoch_rng: dict[str, Any]  # the batch generator's state before this epoch's order was drawn
    batches_done: int
    loss_sum: float
    loss_n: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch_rng": self.epoch_rng,
            "batches_done": self.batches_done,
            "loss_sum": self.loss_sum,
            "loss_n": self.loss_n,
        }

    @classmethod
    def from_dict(cls, position: dict[str, Any]) -> EpochPosition:
        return cls(position["epoch_rng"], position["batches_done"], position["loss_sum"], position["loss_n"])


def bitgen_state(rng: np.random.Generator) -> dict[str, Any]:
    """numpy's PCG64 state as plain ints (stored as strings: they exceed 64 bits)."""
    st = rng.bit_generator.state
    return {
        "bit_generator": st["bit_generator"],
        "state": str(st["state"]["state"]),
        "inc": str(st["state"]["inc"]),
        "has_uint32": st["has_uint32"],
        "uinteger": st["uinteger"],
    }


def restore_bitgen(d: dict[str, Any]) -> dict[str, Any]:
    """bitgen_state's dict back as numpy's ``bit_generator.state``."""
    return {
        "bit_generator": d["bit_generator"],
        "state": {"state": int(d["state"]), "inc": int(d["inc"])},
        "has_uint32": d["has_uint32"],
        "uinteger": d["uinteger"],
    }


def capture_rng_state() -> dict:
    """The state of every random generator training uses, as weights_only-loadable values.

    torch's CPU state is a tensor; numpy's legacy global MT19937 state and Python's
    ``random.getstate()`` (tuples and a numpy array) become plain ints and lists. CUDA states are
    kept only when CUDA was initialised, i.e. when CUDA random numbers may have been drawn.
    """
    name, key, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    cuda = (
        torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    )
    return {
        "torch": torch.get_rng_state(),
        "torch_cuda": cuda,
        "numpy": {
            "name": str(name),
            "key": [int(k) for k in key],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": int(version), "internal": [int(v) for v in internal], "gauss_next": gauss_next},
    }


def restore_rng_state(state: dict) -> None:
    """Put back what capture_rng_state returned, so a resumed run draws the same numbers."""
    try:
        torch.set_rng_state(state["torch"])
        if state["torch_cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["torch_cuda"])
        numpy_state = state["numpy"]
        np.random.set_state(
            (
                numpy_state["name"],
                np.array(numpy_state["key"], dtype=np.uint32),
                numpy_state["pos"],
                numpy_state["has_gauss"],
                numpy_state["cached_gaussian"],
            )
        )
        python_state = state["python"]
        random.setstate(
            (python_state["version"], tuple(python_state["internal"]), python_state["gauss_next"])
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ModelError(f"the checkpoint's random generator state is malformed: {error!r}") from error
