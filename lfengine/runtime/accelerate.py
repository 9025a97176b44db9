"""Where training runs and in what precision: ``--device auto`` and ``--precision``.

On the CPU training is fp32, always: that keeps the promise that the same seed gives the same
model. On CUDA, mixed precision runs the matrix products in 16 bits: bf16 where the GPU supports
it (same exponent range as fp32, no loss scaling needed), else fp16 with a gradient scaler that
keeps small gradients from flushing to zero.

``--device auto`` takes CUDA only for networks with enough dense work per item to gain from it:
a small network spends its time launching kernels and copying batches, and trains faster on
the CPU. Embedding rows do not count towards that work (a lookup is cheap anywhere).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from lfengine.errors import OptionError

#: Dense (non-embedding) trainable parameters from which ``--device auto`` prefers CUDA.
#: Not measured on a GPU yet (no GPU where this was written): a conservative guess, above
#: every default network for the LF sample data (the largest has ~0.5 M dense parameters).
AUTO_CUDA_MIN_DENSE_PARAMETERS = 2_000_000


def requested_device(choice: str) -> torch.device:
    """The device a request or the command line names ("auto": CUDA when usable)."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError("a CUDA device was requested but none is usable here; use device cpu or auto")
    return torch.device(choice)


def dense_parameters(model: torch.nn.Module) -> int:
    """Trainable parameters outside embedding tables."""
    embedded = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in embedded)


def auto_device(dense: int, cuda_available: bool, precision: str = "auto") -> str:
    """``--device auto``: CUDA when there is one and the network is large enough to gain, or
    when mixed precision (only on CUDA) was asked for by name."""
    if not cuda_available:
        return "cpu"
    return "cuda" if dense >= AUTO_CUDA_MIN_DENSE_PARAMETERS or precision in ("bf16", "fp16") else "cpu"


@dataclass
class Precision:
    """How each training step runs: autocast dtype (None: fp32) and the fp16 gradient scaler."""

    name: str
    device_type: str = "cpu"
    dtype: torch.dtype | None = None
    scaler: Any = None  # torch.amp.GradScaler for fp16

    def autocast(self) -> Any:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Before clipping: gradients in their true scale."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)  # skipped when the scaled gradients overflowed
        self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def choose_precision(choice: str, device: torch.device, bf16_supported: bool | None = None) -> Precision:
    """The precision for ``--precision choice`` on ``device`` (bf16 support is asked of CUDA)."""
    if device.type != "cuda":
        if choice in ("bf16", "fp16"):
            raise OptionError(
                f"precision {choice} is for CUDA devices; on the CPU training runs in fp32: use "
                "precision auto or fp32"
            )
        return Precision("fp32")
    if choice == "fp32":
        return Precision("fp32", "cuda")
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    if choice == "bf16" and not bf16_supported:
        raise OptionError("this GPU does not support bf16: use precision fp16, fp32 or auto")
    if choice == "bf16" or (choice == "auto" and bf16_supported):
        return Precision("bf16", "cuda", torch.bfloat16)
    return Precision("fp16", "cuda", torch.float16, torch.amp.GradScaler("cuda"))
