"""Which attention kernel the engine runs: ``auto`` resolved by device and packing, ``flex``
refused where it cannot run, and the choice validated. The flex kernel's exactness, family by
family, is tested in ``tests/engine/test_architectures.py``."""

from __future__ import annotations

import pytest
import torch

from ai_filters.engine.kernels import AttentionKernelError, resolve_attention_kernel
from ai_filters.engine.models import LoadedModel
from ai_filters.engine.scoring import ScoringConfig, ScoringEngine

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # resolving needs no GPU


def test_auto_is_the_existing_path_on_a_cpu_and_flex_for_packed_rows_on_cuda(tiny_llama):
    assert resolve_attention_kernel("auto", tiny_llama, CPU, packing=True) == "sdpa"
    assert resolve_attention_kernel("auto", tiny_llama, CPU, packing=False) == "sdpa"
    assert resolve_attention_kernel("auto", tiny_llama, CUDA, packing=True) == "flex"
    assert resolve_attention_kernel("auto", tiny_llama, CUDA, packing=False) == "sdpa"
    assert resolve_attention_kernel("sdpa", tiny_llama, CUDA, packing=True) == "sdpa"
    assert resolve_attention_kernel("flex", tiny_llama, CPU, packing=False) == "flex"


def test_the_engine_resolves_the_kernel_once_when_built(tiny_llama):
    loaded = LoadedModel("tiny", tiny_llama, None, CPU, torch.float32)
    engine = ScoringEngine(loaded, [(1, 0)], ScoringConfig(max_tokens=16))
    assert (engine.config.packing, engine.config.attention_kernel) == (False, "sdpa")
    packed = ScoringConfig(max_tokens=16, packing=True, attention_kernel="flex")
    assert ScoringEngine(loaded, [(1, 0)], packed).config.attention_kernel == "flex"


def test_flex_on_a_device_it_does_not_run_on_is_refused_in_one_line(tiny_llama):
    mps = torch.device("mps")
    with pytest.raises(AttentionKernelError) as refused:
        resolve_attention_kernel("flex", tiny_llama, mps, packing=True)
    assert str(refused.value) == (
        "attention kernel 'flex' cannot run: flex_attention runs on cuda and cpu only, not 'mps'"
    )
    assert resolve_attention_kernel("auto", tiny_llama, mps, packing=True) == "sdpa"


def test_an_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="^attention kernel must be one of auto, sdpa, flex$"):
        ScoringConfig(attention_kernel="triton")
