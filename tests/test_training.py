"""The shapes, parameter count and WSD phases shared by the nanotron configs and the proxy."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from ai_filters.proxy import SIZES
from ai_filters.training import SHAPES, parameter_count, wsd_phases


def meta_count(config) -> int:
    """Parameters of transformers' Llama of ``config``, built on the meta device (no memory);
    tied weights are one parameter."""
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_parameter_count_is_transformers_count_of_the_shape(name):
    from transformers import LlamaConfig

    assert parameter_count(SHAPES[name]) == meta_count(LlamaConfig(**asdict(SHAPES[name])))


@pytest.mark.parametrize("name", sorted(SIZES))
def test_proxy_sizes_are_their_shapes_and_counted_alike(name):
    size = SIZES[name]
    assert size.shape(49152) == SHAPES[f"proxy-{name}"]
    assert parameter_count(size.shape(50_000)) == meta_count(size.llama_config(50_000))


def test_documented_sizes():
    assert parameter_count(SHAPES["nanotron-7b"]) == 6_979_588_096
    assert parameter_count(SHAPES["nanotron-tiny"]) == 9_978_720
    assert parameter_count(SHAPES["proxy-tiny"]) == 3_244_352  # 3.2M
    assert round(parameter_count(SHAPES["proxy-gpu"]) / 1e6, 1) == 100.7


@pytest.mark.parametrize(
    ("steps", "warmup", "decay_start", "decay"),
    [
        (119_209, 119, 89_407, 29_802),  # the 7B nanotron run
        (4000, 4, 3000, 1000),  # the proxy's gpu size
        (100, 1, 75, 25),  # 0.1 % of 100 rounds to 0: at least one warmup step
        (8, 1, 6, 2),
        (2, 1, 1, 1),  # 25 % of 2 rounds to 0: at least one decay step; no stable phase
    ],
)
def test_wsd_phases(steps, warmup, decay_start, decay):
    phases = wsd_phases(steps)
    assert (phases.warmup_steps, phases.decay_start, phases.decay_steps) == (
        warmup,
        decay_start,
        decay,
    )
    assert phases.stable_steps == decay_start - warmup


def test_a_single_step_has_no_room_for_the_phases():
    assert wsd_phases(1).stable_steps == -1  # callers refuse it
