"""Mean and standard deviation over seeds, paired differences and their t intervals, against
values computed by hand.

The t quantiles come from the closed forms of Student's t distribution with 1 and 2 degrees of
freedom: with 1, ``F(t) = 1/2 + arctan(t) / pi``, so ``t(0.975) = tan(0.475 pi)``; with 2,
``F(t) = 1/2 + t / (2 sqrt(2 + t^2))``, so ``t(0.975)^2 = 2 x 0.95^2 / (1 - 0.95^2)``.
"""

from __future__ import annotations

import math

import pytest

from ai_filters.proxy import (
    MEAN_HELDOUT,
    compare_arms,
    differences,
    excludes_zero,
    paired_difference,
    spread,
)

T_1 = math.tan(0.475 * math.pi)  # 12.706...
T_2 = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))  # 4.3027...
REL = 1e-12  # float64 formulas on exact inputs: a few roundings of the last bit


def test_spread_is_the_mean_and_the_sample_standard_deviation() -> None:
    summary = spread([1.0, 2.0, 4.0])
    # mean 7/3; squared deviations 16/9, 1/9, 25/9 sum to 42/9, over n - 1 = 2: 7/3
    assert summary["mean"] == pytest.approx(7 / 3, rel=REL)
    assert summary["std"] == pytest.approx(math.sqrt(7 / 3), rel=REL)
    assert summary["values"] == [1.0, 2.0, 4.0]
    assert spread([5.5]) == {"mean": 5.5, "std": None, "values": [5.5]}


def test_paired_t_interval_of_three_seeds() -> None:
    # differences 1, 1, 2: mean 4/3, sd sqrt(1/3), standard error 1/3
    got = paired_difference([7.0, 7.5, 6.0], [6.0, 6.5, 4.0])
    assert got["n"] == 3
    assert got["mean"] == pytest.approx(4 / 3, rel=REL)
    assert got["std"] == pytest.approx(math.sqrt(1 / 3), rel=REL)
    assert got["low"] == pytest.approx(4 / 3 - T_2 / 3, rel=REL)  # -0.101
    assert got["high"] == pytest.approx(4 / 3 + T_2 / 3, rel=REL)  # 2.768
    assert excludes_zero(got) is False


def test_an_interval_that_excludes_zero() -> None:
    # differences -0.20, -0.21, -0.22 (in binary only about these): mean -0.21, sd 0.01
    got = paired_difference([6.80, 6.79, 6.78], [7.0, 7.0, 7.0])
    half = T_2 * 0.01 / math.sqrt(3)  # 0.0248
    assert got["low"] == pytest.approx(-0.21 - half, rel=1e-9)  # inputs rounded to binary
    assert got["high"] == pytest.approx(-0.21 + half, rel=1e-9)
    assert excludes_zero(got) is True


def test_two_seeds_use_one_degree_of_freedom_and_one_seed_gives_no_interval() -> None:
    got = paired_difference([3.0, 5.0], [2.0, 2.0])  # differences 1, 3: sd sqrt(2), se 1
    assert (got["low"], got["high"]) == pytest.approx((2 - T_1, 2 + T_1), rel=REL)
    alone = paired_difference([3.0], [2.5])
    assert alone == {"mean": 0.5, "std": None, "low": None, "high": None, "n": 1}
    assert excludes_zero(alone) is None
    with pytest.raises(ValueError, match="2 values but 1 baselines"):
        paired_difference([3.0, 5.0], [2.0])


def arm(name: str, losses_by_seed: dict[int, float]) -> dict:
    """An arm entry with one run per seed and a single held-out set ``web``."""
    runs = [
        {"seed": seed, "heldout": {"web": loss}, "heldout_mean": loss}
        for seed, loss in losses_by_seed.items()
    ]
    return {"name": name, "runs": runs}


def test_runs_are_paired_by_seed_not_by_position() -> None:
    corpus = arm("corpus", {0: 7.0, 1: 8.0, 2: 9.0})
    better = arm("corpus+x", {2: 8.5, 0: 6.5, 1: 7.5})  # 0.5 lower for every seed
    got = compare_arms(better, corpus)
    assert set(got) == {"web", MEAN_HELDOUT}
    assert got["web"]["mean"] == -0.5
    assert got["web"]["std"] == 0.0
    assert (got["web"]["low"], got["web"]["high"]) == (-0.5, -0.5)
    with pytest.raises(ValueError, match=r"different seeds: \[0, 1, 2\] and \[0, 1\]"):
        compare_arms(corpus, arm("short", {0: 7.0, 1: 8.0}))


def test_every_arm_against_each_baseline_once() -> None:
    arms = [arm(name, {0: 7.0, 1: 7.5}) for name in ("corpus", "ai", "random", "ppl")]
    pairs = [(p["arm"], p["baseline"]) for p in differences(arms, ["corpus", "random", "none"])]
    assert pairs == [
        ("ai", "corpus"),
        ("random", "corpus"),
        ("ppl", "corpus"),
        ("ai", "random"),
        ("ppl", "random"),
    ]
