"""The report of a proxy run: ``results.md`` (settings, one row per arm with the mean and
standard deviation over seeds, the paired differences between arms) and the loss curves."""

from __future__ import annotations

from pathlib import Path

from ai_filters.markdown import markdown_table
from ai_filters.proxy.summary import MEAN_HELDOUT, excludes_zero


def mean_std(spread: dict) -> str:
    """``mean ± std`` (4 decimals); the mean alone when there is no standard deviation."""
    if spread["std"] is None:
        return f"{spread['mean']:.4f}"
    return f"{spread['mean']:.4f} ± {spread['std']:.4f}"


def results_table(results: dict) -> str:
    """A markdown table: one row per arm, token counts and held-out losses over seeds."""
    arms = results["arms"]
    sets = list(arms[0]["heldout"])
    header = [
        "arm",
        "training tokens",
        "mix tokens",
        "unique tokens",
        "selection tokens",
        "selection docs",
        "epochs",
        "final train loss",
        *[f"{s} loss" for s in sets],
        MEAN_HELDOUT,
    ]
    rows = [
        [
            arm["name"],
            f"{arm['training_tokens']:,}",
            f"{arm['mix_tokens']:,}",
            f"{arm['unique_tokens']:,}",
            f"{arm['selection_tokens']:,}",
            f"{arm['selection_documents']:,}",
            f"{arm['epochs']:.2f}",
            mean_std(arm["final_train_loss"]),
            *[mean_std(arm["heldout"][s]) for s in sets],
            mean_std(arm["heldout_mean"]),
        ]
        for arm in arms
    ]
    return markdown_table(header, rows)


def difference_cell(difference: dict) -> str:
    """``mean [low, high]`` with signs (3 decimals), ``*`` when the interval excludes zero; the
    mean alone without an interval."""
    if difference["low"] is None:
        return f"{difference['mean']:+.3f}"
    mark = " *" if excludes_zero(difference) else ""
    return f"{difference['mean']:+.3f} [{difference['low']:+.3f}, {difference['high']:+.3f}]{mark}"


def differences_table(results: dict) -> str:
    """A markdown table: one row per (arm, baseline), the paired difference per held-out set."""
    pairs = results["differences"]
    sets = list(pairs[0]["sets"])
    header = ["arm - baseline", *sets]
    rows = [
        [f"{p['arm']} - {p['baseline']}", *[difference_cell(p["sets"][s]) for s in sets]]
        for p in pairs
    ]
    return markdown_table(header, rows)


def differences_verdict(results: dict) -> str:
    """One line per (arm, baseline): whether the interval of the mean held-out difference
    excludes zero, or that there is no interval (one seed)."""
    lines = []
    for pair in results["differences"]:
        difference = pair["sets"][MEAN_HELDOUT]
        verdict = {
            None: "no interval (one seed)",
            True: "the interval excludes zero",
            False: "the interval includes zero",
        }[excludes_zero(difference)]
        lines.append(
            f"- {pair['arm']} - {pair['baseline']}: {difference_cell(difference)}, {verdict}"
        )
    return "\n".join(lines)


def seeds_sentence(results: dict) -> str:
    """What the seeds are, what they change and how the intervals are computed."""
    seeds = results["settings"]["seeds"]
    interval = results["settings"]["interval"]
    changes = (
        "each seed sets the initial weights (the same for every arm), the order the documents "
        "are concatenated in before they are cut into blocks, and the order the blocks are "
        "drawn in; the held-out sets are the same for every seed"
    )
    if len(seeds) < 2:
        return (
            f"One seed ({seeds[0]}): no standard deviation and no interval (they need "
            f"`--seeds 2` or more); {changes}."
        )
    return (
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): {changes}. Losses are mean ± sample "
        f"standard deviation over the seeds. Differences are arm minus baseline per seed "
        f"(negative: the arm predicts the set better), their mean over seeds and a "
        f"{interval['confidence']:.0%} {interval['method']}; `*` marks an interval that "
        f"excludes zero."
    )


def results_markdown(results: dict) -> str:
    """``results.md``: the settings in a few lines, :func:`results_table`, then the paired
    differences (:func:`differences_table`) and which of them exclude zero."""
    s = results["settings"]
    size, schedule = s["size"], s["schedule"]
    text = (
        "# Weak-to-strong proxy pretraining\n\n"
        f"Llama, {s['parameters']:,} parameters (hidden {size['hidden']}, {size['layers']} "
        f"layers, tied embeddings, vocabulary {s['vocab_size']:,}), trained from scratch per "
        f"arm and seed: {size['steps']} steps of {s['global_batch']} x {size['seq_len']} tokens, "
        f"peak LR {size['lr']:g}, WSD schedule (warmup {schedule['warmup_steps']} step(s), the "
        f"peak until step {schedule['decay_start']}, then a linear decay over the last "
        f"{schedule['decay_steps']} steps to {schedule['final_lr_ratio']:.0%} of the peak).\n\n"
        f"{seeds_sentence(results)}\n\n"
        "Held-out losses: mean token cross-entropy (nats) of documents not in the corpus, per "
        "domain, and of synthetic step-by-step reasoning problems generated by the project, "
        "over each set's full blocks of the sequence length (the tail is left out). "
        "`mix tokens`: one pass over corpus + selection; `unique tokens`: distinct documents "
        "only; `epochs`: training tokens / packed mix tokens.\n\n" + results_table(results) + "\n"
    )
    if results.get("differences"):
        text += (
            "\n## Paired differences\n\n"
            + differences_table(results)
            + "\n\nMean held-out loss:\n\n"
            + differences_verdict(results)
            + "\n"
        )
    return text


def _plot_seeds(axes, x: list[int], curves: list[list[float]], color: str, **style) -> None:
    """Each curve (one per seed) thin when there are several, their mean thick."""
    if len(curves) > 1:
        for curve in curves:
            axes.plot(x, curve, color=color, lw=0.5, alpha=0.4)
    mean = [sum(values) / len(values) for values in zip(*curves, strict=True)]
    axes.plot(x, mean, color=color, lw=1.5, **style)


def plot_curves(results: dict, png: str | Path) -> Path:
    """Training loss per step and held-out mean loss at the evaluation points, per arm: the
    mean over seeds thick, each seed thin (with several seeds)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4), layout="constrained")
    train, held = figure.subplots(1, 2)
    for index, arm in enumerate(results["arms"]):
        runs, sets = arm["runs"], list(arm["heldout"])
        _plot_seeds(
            train,
            [e["step"] for e in runs[0]["train_loss"]],
            [[e["loss"] for e in run["train_loss"]] for run in runs],
            f"C{index % 10}",
            label=arm["name"],
        )
        _plot_seeds(
            held,
            [e["step"] for e in runs[0]["heldout_during_training"]],
            [
                [sum(e[s] for s in sets) / len(sets) for e in r["heldout_during_training"]]
                for r in runs
            ],
            f"C{index % 10}",
            label=arm["name"],
            marker="o",
        )
    seeds = len(results["settings"]["seeds"])
    suffix = f"\n(mean of {seeds} seeds; thin lines: each seed)" if seeds > 1 else ""
    train.set(xlabel="step", ylabel="training loss", title="training loss" + suffix)
    held.set(xlabel="step", ylabel="mean held-out loss", title="held-out loss (all sets)" + suffix)
    train.legend(fontsize=8)
    held.legend(fontsize=8)
    figure.savefig(png, dpi=110)
    return Path(png)
