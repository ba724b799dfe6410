"""Several seeds of a proxy run: each arm's losses over seeds, and paired differences of arms.

Every arm is trained once per seed, and seed ``s`` is the same for every arm: it fixes the
model's initial weights (identical across arms), the order the arm's documents are concatenated
in before they are cut into blocks, and the order ``Trainer`` draws the blocks in (see
:func:`ai_filters.proxy.train.train_arm`). The held-out sets do not depend on it. Two arms'
runs with the same seed start from the same weights, so their losses are paired by seed.

- Per arm and held-out set: the mean and the sample standard deviation (``ddof=1``) over seeds.
- Per (arm, baseline) and set: the per-seed differences ``loss(arm) - loss(baseline)``
  (negative: the arm predicts the set better), their mean and a 95 % paired t interval,
  ``mean +- t(0.975, n - 1) * sd / sqrt(n)`` with ``scipy.stats.t`` (it treats the ``n``
  differences as draws from a normal distribution; with 3 seeds ``t = 4.30``).

With fewer than 2 seeds there is no standard deviation and no interval: those fields are None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
INTERVAL_METHOD = "paired t interval over seeds (scipy.stats.t)"
MEAN_HELDOUT = "mean held-out"  # the mean over the held-out sets, summarised as another set


def spread(values: Sequence[float]) -> dict:
    """``{"mean", "std", "values"}`` of ``values``; ``std`` (ddof 1) is None for one value."""
    if not values:
        raise ValueError("no values to summarise")
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else None
    return {"mean": float(array.mean()), "std": std, "values": [float(v) for v in values]}


def paired_difference(
    values: Sequence[float], baselines: Sequence[float], confidence: float = CONFIDENCE
) -> dict:
    """Mean of ``values[i] - baselines[i]`` with its paired t interval at ``confidence``.

    Returns ``{"mean", "std", "low", "high", "n"}``; ``std``, ``low`` and ``high`` are None when
    there are fewer than 2 pairs. Identical differences give a zero-width interval.
    """
    if len(values) != len(baselines):
        raise ValueError(f"{len(values)} values but {len(baselines)} baselines to pair them with")
    differences = spread([v - b for v, b in zip(values, baselines, strict=True)])
    n, mean, std = len(values), differences["mean"], differences["std"]
    low = high = None
    if std is not None:
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
        low, high = mean - float(half), mean + float(half)
    return {"mean": mean, "std": std, "low": low, "high": high, "n": n}


def excludes_zero(difference: dict) -> bool | None:
    """Whether the interval lies entirely on one side of zero; None without an interval."""
    if difference["low"] is None:
        return None
    return difference["low"] > 0 or difference["high"] < 0


def losses_by_set(run: dict) -> dict[str, float]:
    """A run's held-out loss per set, with :data:`MEAN_HELDOUT`."""
    return {**run["heldout"], MEAN_HELDOUT: run["heldout_mean"]}


def arm_spreads(runs: Sequence[dict]) -> dict[str, dict]:
    """Per held-out set (and :data:`MEAN_HELDOUT`), :func:`spread` over an arm's runs."""
    per_run = [losses_by_set(run) for run in runs]
    return {name: spread([losses[name] for losses in per_run]) for name in per_run[0]}


def compare_arms(arm: dict, baseline: dict, confidence: float = CONFIDENCE) -> dict:
    """Per set, :func:`paired_difference` of ``arm`` minus ``baseline``, runs paired by seed.

    Both arms must have one run for each of the same seeds (``ValueError`` otherwise).
    """
    runs = {run["seed"]: losses_by_set(run) for run in arm["runs"]}
    baseline_runs = {run["seed"]: losses_by_set(run) for run in baseline["runs"]}
    if sorted(runs) != sorted(baseline_runs):
        raise ValueError(
            f"arms {arm['name']} and {baseline['name']} have runs of different seeds: "
            f"{sorted(runs)} and {sorted(baseline_runs)}"
        )
    seeds = sorted(runs)
    return {
        name: paired_difference(
            [runs[s][name] for s in seeds], [baseline_runs[s][name] for s in seeds], confidence
        )
        for name in runs[seeds[0]]
    }


def differences(arms: Sequence[dict], baselines: Sequence[str]) -> list[dict]:
    """Every arm against every baseline arm present: ``[{"arm", "baseline", "sets"}]``.

    An arm is not compared with itself, nor with a baseline already compared the other way
    round (the corpus arm against the random arm is the random arm against the corpus arm).
    """
    by_name = {arm["name"]: arm for arm in arms}
    done: set[frozenset[str]] = set()
    pairs = []
    for baseline in (b for b in baselines if b in by_name):
        for arm in arms:
            pair = frozenset((arm["name"], baseline))
            if arm["name"] == baseline or pair in done:
                continue
            done.add(pair)
            sets = compare_arms(arm, by_name[baseline])
            pairs.append({"arm": arm["name"], "baseline": baseline, "sets": sets})
    return pairs
