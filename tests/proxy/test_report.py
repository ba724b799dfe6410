"""results.md and the loss curves, from a results dict shaped as run_experiment returns it."""

from __future__ import annotations

from ai_filters.proxy import plot_curves, results_markdown, results_table, schedule_summary
from tests.proxy.helpers import TINY


def arm(name: str, losses: tuple[float, float]) -> dict:
    heldout = {"web": losses[0], "reasoning": losses[1]}
    return {
        "name": name,
        "training_tokens": 512,
        "mix_tokens": 4000,
        "unique_tokens": 3000,
        "selection_tokens": 1000,
        "selection_documents": 3,
        "epochs": 0.128,
        "final_train_loss": 10.5,
        "heldout": heldout,
        "heldout_mean": sum(losses) / 2,
        "train_loss": [{"step": 1, "loss": 10.8}, {"step": 2, "loss": 10.5}],
        "heldout_during_training": [{"step": 2, **heldout}],
    }


RESULTS = {
    "settings": {
        "size": {"hidden": 32, "layers": 2, "steps": 8, "seq_len": 32, "lr": 3e-3},
        "parameters": 1_600_000,
        "vocab_size": 49152,
        "global_batch": 2,
        "seed": 0,
        "schedule": schedule_summary(TINY.steps),
    },
    "arms": [arm("corpus", (7.25, 6.5)), arm("corpus+x", (7.0, 6.25))],
}


def test_results_table_has_one_row_per_arm():
    counts = "| 512 | 4,000 | 3,000 | 1,000 | 3 | 0.13 | 10.5000 |"
    lines = results_table(RESULTS).splitlines()
    assert lines[0].endswith("| web loss | reasoning loss | mean held-out |")
    assert lines[2:] == [
        f"| corpus {counts} 7.2500 | 6.5000 | 6.8750 |",
        f"| corpus+x {counts} 7.0000 | 6.2500 | 6.6250 |",
    ]


def test_results_markdown_states_the_schedule_and_the_plot_is_written(tmp_path):
    text = results_markdown(RESULTS)
    assert "warmup 1 step(s), the peak until step 6" in text
    assert "linear decay over the last 2 steps to 10% of the peak" in text
    png = plot_curves(RESULTS, tmp_path / "curves.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
