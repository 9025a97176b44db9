"""Device and precision choice (lfengine/runtime/accelerate.py): the selection rules, and the CPU path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lfengine import service
from lfengine.data.synthetic import write_classification_corpus
from lfengine.errors import OptionError
from lfengine.options import TrainOptions
from lfengine.runtime.accelerate import (
    AUTO_CUDA_MIN_DENSE_PARAMETERS,
    auto_device,
    choose_precision,
    dense_parameters,
)


def test_cpu_trains_in_fp32_and_refuses_mixed_precision() -> None:
    cpu = torch.device("cpu")
    for choice in ("auto", "fp32"):
        precision = choose_precision(choice, cpu)
        assert precision.name == "fp32" and precision.dtype is None and precision.scaler is None
    for choice in ("bf16", "fp16"):
        with pytest.raises(OptionError, match="CUDA"):
            choose_precision(choice, cpu)


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled")
def test_cuda_precision_prefers_bf16_and_falls_back_to_scaled_fp16() -> None:
    cuda = torch.device("cuda")
    assert choose_precision("auto", cuda, bf16_supported=True).dtype == torch.bfloat16
    assert choose_precision("bf16", cuda, bf16_supported=True).scaler is None
    assert choose_precision("fp32", cuda, bf16_supported=True).dtype is None
    with pytest.raises(OptionError, match="bf16"):
        choose_precision("bf16", cuda, bf16_supported=False)
    fp16 = [choose_precision(c, cuda, bf16_supported=False) for c in ("auto", "fp16")]
    assert all(p.dtype == torch.float16 and p.scaler is not None for p in fp16)


def test_auto_device_takes_cuda_only_for_large_dense_networks() -> None:
    assert auto_device(10**9, cuda_available=False) == "cpu"
    assert auto_device(AUTO_CUDA_MIN_DENSE_PARAMETERS - 1, cuda_available=True) == "cpu"
    assert auto_device(AUTO_CUDA_MIN_DENSE_PARAMETERS, cuda_available=True) == "cuda"
    assert auto_device(10, cuda_available=True, precision="bf16") == "cuda"  # asked for by name


def test_dense_parameters_leave_out_embedding_tables() -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(1000, 50), torch.nn.Linear(50, 10))
    assert dense_parameters(model) == 50 * 10 + 10


def test_training_with_bf16_on_the_cpu_is_refused_before_any_work(tmp_path: Path) -> None:
    meta = write_classification_corpus(tmp_path / "data", 60, seed=1)
    with pytest.raises(OptionError, match="precision bf16"):
        service.train(
            str(meta), str(tmp_path / "m"), TrainOptions(device="cpu", precision="bf16", max_epochs=1)
        )
    assert not (tmp_path / "m").exists()
    with pytest.raises(OptionError, match="precision"):
        TrainOptions(precision="fp8")
