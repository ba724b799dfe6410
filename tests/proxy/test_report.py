"""results.md and the loss curves, from a results dict shaped as run_experiment returns it."""

from __future__ import annotations

from ai_filters.proxy import (
    CONFIDENCE,
    INTERVAL_METHOD,
    arm_entry,
    differences,
    plot_curves,
    results_markdown,
    results_table,
    schedule_summary,
)
from tests.proxy.helpers import TINY


def run(name: str, seed: int, losses: tuple[float, float]) -> dict:
    """One run as train_arm returns it (the fields the report reads)."""
    heldout = {"web": losses[0], "reasoning": losses[1]}
    return {
        "name": name,
        "training_tokens": 512,
        "mix_tokens": 4000,
        "unique_tokens": 3000,
        "selection_tokens": 1000,
        "selection_documents": 3,
        "blocks": 125,
        "epochs": 0.128,
        "seed": seed,
        "heldout": heldout,
        "heldout_mean": sum(losses) / 2,
        "final_train_loss": 10.5 + seed,
        "train_loss": [{"step": 1, "loss": 10.8 + seed}, {"step": 2, "loss": 10.5 + seed}],
        "heldout_during_training": [{"step": 2, **heldout}],
    }


def results(losses: dict[str, list[tuple[float, float]]]) -> dict:
    """Results of arms with one run per seed (``losses[arm][seed]``), compared with corpus."""
    arms = [
        arm_entry([run(name, seed, pair) for seed, pair in enumerate(pairs)])
        for name, pairs in losses.items()
    ]
    seeds = list(range(len(next(iter(losses.values())))))
    return {
        "settings": {
            "size": {"hidden": 32, "layers": 2, "steps": 8, "seq_len": 32, "lr": 3e-3},
            "parameters": 1_600_000,
            "vocab_size": 49152,
            "global_batch": 2,
            "seeds": seeds,
            "schedule": schedule_summary(TINY.steps),
            "interval": {"method": INTERVAL_METHOD, "confidence": CONFIDENCE},
        },
        "arms": arms,
        "differences": differences(arms, ["corpus"]),
    }


# binary-exact losses: the table's rounding is then exact too
ONE_SEED = results({"corpus": [(7.25, 6.5)], "corpus+x": [(7.0, 6.25)]})
# corpus+x is 0.25 lower than corpus on web for every seed, and 0.5 or 0 lower on reasoning
THREE_SEEDS = results(
    {
        "corpus": [(7.25, 6.5), (7.5, 6.5), (7.0, 6.5)],
        "corpus+x": [(7.0, 6.0), (7.25, 6.5), (6.75, 6.0)],
    }
)


def test_one_seed_gives_plain_values_and_says_there_is_no_interval(tmp_path) -> None:
    counts = "| 512 | 4,000 | 3,000 | 1,000 | 3 | 0.13 | 10.5000 |"
    lines = results_table(ONE_SEED).splitlines()
    assert lines[0].endswith("| web loss | reasoning loss | mean held-out |")
    assert lines[2:] == [
        f"| corpus {counts} 7.2500 | 6.5000 | 6.8750 |",
        f"| corpus+x {counts} 7.0000 | 6.2500 | 6.6250 |",
    ]
    text = results_markdown(ONE_SEED)
    assert "One seed (0): no standard deviation and no interval" in text
    assert "| corpus+x - corpus | -0.250 | -0.250 | -0.250 |" in text
    assert "- corpus+x - corpus: -0.250, no interval (one seed)" in text


def test_three_seeds_give_mean_std_and_paired_intervals() -> None:
    lines = results_table(THREE_SEEDS).splitlines()
    # web 7.25, 7.5, 7.0: mean 7.25, sd 0.25; train loss 10.5, 11.5, 12.5: sd 1
    assert lines[2].startswith("| corpus | 512 | 4,000 | 3,000 | 1,000 | 3 | 0.13 |")
    assert lines[2].endswith(
        "| 11.5000 ± 1.0000 | 7.2500 ± 0.2500 | 6.5000 ± 0.0000 | 6.8750 ± 0.1250 |"
    )
    text = results_markdown(THREE_SEEDS)
    assert "3 seeds (0, 1, 2)" in text
    assert f"95% {INTERVAL_METHOD}" in text
    # web: -0.25 every seed, a zero-width interval; reasoning: -0.5, 0, -0.5 (mean -1/3,
    # sd 0.2887, half-width 4.3027 x 0.2887 / sqrt(3) = 0.7171: -1.0504 to +0.3838)
    row = "| corpus+x - corpus | -0.250 [-0.250, -0.250] * | -0.333 [-1.050, +0.384] |"
    assert row in text
    assert "- corpus+x - corpus: -0.292 [-0.650, +0.067], the interval includes zero" in text


def test_the_plot_is_written_for_one_seed_and_for_several(tmp_path) -> None:
    for name, shaped in (("one", ONE_SEED), ("three", THREE_SEEDS)):
        png = plot_curves(shaped, tmp_path / f"{name}.png")
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_results_markdown_states_the_schedule() -> None:
    text = results_markdown(ONE_SEED)
    assert "warmup 1 step(s), the peak until step 6" in text
    assert "linear decay over the last 2 steps to 10% of the peak" in text
