"""nanotron's learning-rate schedule: the value at each step and a plot of it.

``lr_at`` reproduces the ``lr_lambda`` of nanotron main (huggingface/nanotron@2411b022) for the
warmup and decay styles nanotron accepts; ``plot_schedule`` draws it next to a config.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ai_filters.nanotron.schema import NanotronConfig

LR_WARMUP_STYLES = ("linear", "constant")
LR_DECAY_STYLES = ("linear", "cosine", "1-sqrt")


def lr_at(step: int, config: NanotronConfig) -> float:
    """The learning rate nanotron's scheduler gives at ``step`` (same math as its ``lr_lambda``).

    nanotron logs this value as ``lr`` at iteration ``step``; the update of iteration ``step``
    uses ``lr_at(step - 1)``. Unset fields resolve as nanotron resolves them: ``lr_decay_steps``
    = train_steps - warmup, ``lr_decay_starting_step`` = warmup, ``min_decay_lr`` = peak.
    Phases: warmup (linear from 0, or constant) up to ``lr_warmup_steps`` inclusive, constant
    peak until ``lr_decay_starting_step``, decay over ``lr_decay_steps``, then ``min_decay_lr``.
    """
    s = config.optimizer.learning_rate_scheduler
    peak, warmup = s.learning_rate, s.lr_warmup_steps
    decay_steps = s.lr_decay_steps
    if decay_steps is None:
        decay_steps = config.tokens.train_steps - warmup
    start = warmup if s.lr_decay_starting_step is None else s.lr_decay_starting_step
    floor = peak if s.min_decay_lr is None else s.min_decay_lr
    if warmup == 0 and decay_steps == 0:
        return peak
    if s.lr_warmup_style is not None and step <= warmup:
        return peak * step / max(warmup, 1) if s.lr_warmup_style == "linear" else peak
    if step < start:
        return peak
    if s.lr_decay_style is not None and step < start + decay_steps:
        return floor + (peak - floor) * _decay_factor(
            s.lr_decay_style, (step - start) / decay_steps
        )
    return floor


def _decay_factor(style: str, progress: float) -> float:
    """Share of (peak - floor) left after ``progress`` (0..1) of the decay."""
    if style == "linear":
        return 1 - progress
    if style == "cosine":
        return (1 + math.cos(math.pi * progress)) / 2
    if style == "1-sqrt":
        return 1 - math.sqrt(progress)
    raise ValueError(f"unknown lr_decay_style {style!r}; use one of {', '.join(LR_DECAY_STYLES)}")


def plot_schedule(config: NanotronConfig, png: str | Path, title: str = "") -> Path:
    """Plot the learning rate over all training steps (and a zoom on the warmup) to ``png``."""
    from matplotlib.figure import Figure

    s = config.optimizer.learning_rate_scheduler
    total = config.tokens.train_steps
    marks = [s.lr_warmup_steps, s.lr_decay_starting_step or s.lr_warmup_steps, total]
    steps = np.unique(np.concatenate([np.linspace(0, total, 2001).round(), marks])).astype(int)
    zoom = np.arange(0, min(total, max(3 * s.lr_warmup_steps, 10)) + 1)
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    full, warm = figure.subplots(1, 2, width_ratios=[3, 1])
    full.plot(steps, [lr_at(int(i), config) for i in steps], color="tab:blue")
    for mark, label in zip(marks[:2], ("end of warmup", "decay starts"), strict=True):
        full.axvline(mark, color="grey", linestyle=":", linewidth=1)
        full.annotate(f"{label}\nstep {mark:,}", (mark, s.learning_rate), fontsize=8, va="top")
    full.set(xlabel="step", ylabel="learning rate", title=title or "nanotron learning rate")
    warm.plot(
        zoom,
        [lr_at(int(i), config) for i in zoom],
        color="tab:orange",
        marker="." if zoom.size <= 60 else None,
    )
    warm.set(xlabel="step", title=f"warmup ({s.lr_warmup_steps} steps)")
    figure.savefig(png, dpi=110)
    return Path(png)
