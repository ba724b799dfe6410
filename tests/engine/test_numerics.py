"""The rounding tolerances every float comparison of losses and scores in the suite uses."""

from __future__ import annotations

import math

import pytest
import torch

from ai_filters.engine.numerics import (
    BF16_SCORE_DIFF,
    dot_rtol,
    loss_rtol,
    score_atol,
    score_tolerance,
    uniform_mean_rtol,
    widest_sum,
)


def test_embedded_model_tolerance_follows_from_its_shape(embedded_config):
    assert (embedded_config.num_hidden_layers, embedded_config.intermediate_size) == (30, 1536)
    assert widest_sum(embedded_config, 512) == 1536
    assert widest_sum(embedded_config, 4096) == 4096  # attention over a longer sequence
    assert loss_rtol(embedded_config, 512) == math.sqrt(30 * 1536) * 2.0**-24
    assert loss_rtol(embedded_config, 512, torch.float64) < 1e-13


def test_tolerance_passes_kernel_rounding_and_fails_a_real_bug(embedded_config):
    rtol = loss_rtol(embedded_config, 512)
    # measured on an AMD EPYC (AVX2 kernels): a 2-token document alone vs in a padded batch
    assert 9.326559066772461 == pytest.approx(9.32654857635498, rel=rtol)
    # a bug of 1e-4 in a loss of web text (about 2 to 4 nats a token) is caught
    for loss in (2.0, 3.0, 4.0):
        assert loss + 1e-4 != pytest.approx(loss, rel=rtol)


def test_score_tolerance_bounds_the_ratio_of_two_perturbed_losses():
    rtol = 1e-5
    base, ref = 2.0, 3.0
    score = (ref - base) / base
    worst = (ref * (1 + rtol) - base * (1 - rtol)) / (base * (1 - rtol))
    assert abs(worst - score) <= score_atol(score, rtol) * (1 + 2 * rtol)
    assert score_atol(score, rtol) == pytest.approx(2 * (1 + 0.5) * rtol, rel=1e-12)


def test_bf16_scores_are_held_to_the_measured_bound(embedded_config):
    """The arithmetic's bound in bf16 is near 1 relative (it could never fail); bf16 scores get
    the bound measured against fp32 instead, and a score off by 0.05 is a disagreement."""
    bf16_rtol = loss_rtol(embedded_config, 512, torch.bfloat16)
    assert bf16_rtol > 0.5
    assert score_tolerance(0.5, bf16_rtol, torch.bfloat16) == 2 * BF16_SCORE_DIFF < 0.05
    assert score_atol(0.5, bf16_rtol) > 1  # what the fp32 formula would have allowed
    rtol = loss_rtol(embedded_config, 512)
    assert score_tolerance(0.5, rtol) == score_atol(0.5, rtol)
    with pytest.raises(ValueError, match="no score tolerance measured"):
        score_tolerance(0.5, rtol, torch.float16)


def test_benchmark_comparison_uses_the_bf16_bound(monkeypatch):
    import importlib
    from pathlib import Path

    # the benchmarks' shared modules import each other as the scripts do: from their folder
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    bench = importlib.import_module("scoring_variants")
    naive = {"tokens_per_s": 1.0, "scores": [0.5, 0.2], "loss_base": [2, 2], "loss_ref": [3, 2.4]}
    engine = {**naive, "scores": [0.5, 0.2 + 3 * BF16_SCORE_DIFF]}
    assert not bench.comparison(naive, engine, 0.84, torch.bfloat16)["scores_agree"]
    engine = {**naive, "scores": [0.5, 0.2 + BF16_SCORE_DIFF]}
    assert bench.comparison(naive, engine, 0.84, torch.bfloat16)["scores_agree"]


def test_half_formats_accumulate_in_fp32_and_round_once():
    assert dot_rtol(576, torch.bfloat16) == math.sqrt(576) * 2.0**-24 + 2.0**-8
    assert dot_rtol(576, torch.float32) == (math.sqrt(576) + 1) * 2.0**-24
    # the fp32 rule with bf16's unit roundoff would be 24 times looser than the bf16 one
    assert math.sqrt(576) * 2.0**-8 > 23 * dot_rtol(576, torch.bfloat16)
    assert uniform_mean_rtol(6, torch.bfloat16) == 2 * (2.0**-8 + dot_rtol(6, torch.bfloat16))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_dot_tolerance_bounds_this_machines_kernels(dtype):
    """bf16 and fp32 matrix products (which sum 576 terms each) stay within dot_rtol of the
    exact float64 result of their operands, relative to the sum of the terms' magnitudes."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 576, generator=generator).to(dtype)
    w = torch.randn(512, 576, generator=generator).to(dtype)
    exact = x.double() @ w.double().T
    magnitudes = x.double().abs() @ w.double().abs().T
    error = (torch.nn.functional.linear(x, w).double() - exact).abs()
    assert bool((error <= dot_rtol(576, dtype) * magnitudes).all())
    # and the bound is not vacuous: the rounding of the result alone reaches a good part of it
    assert (error / magnitudes).max().item() > 0.01 * dot_rtol(576, dtype)
