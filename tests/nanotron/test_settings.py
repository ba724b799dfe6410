"""PlanSettings: a run's settings are checked when built, each bad value named in one line."""

from __future__ import annotations

import pytest

from ai_filters.cli import main
from ai_filters.nanotron import PlanSettings, build_config

CORPUS = "s3://bucket/tokenized/corpus"
TINY = {"model": "tiny", "gpus_per_node": 1, "token_counts": (10**9,)}  # a valid run


def test_an_unset_size_is_the_presets():
    plan = build_config(PlanSettings(CORPUS, **TINY))
    assert plan.config.tokens.train_steps == 305  # the preset's 1e7 tokens / (32 x 1,024)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        # each of these was silently replaced by the preset's value before the check
        ({"tokens": 0}, "tokens must be an integer >= 1, got 0"),
        ({"global_batch": 0}, "global_batch must be an integer >= 1, got 0"),
        ({"lr": 0.0}, "lr must be positive, got 0.0"),
        ({"run_name": ""}, "run_name is empty"),
        # the others: refused before anything is read or planned, not later or by a crash
        ({"nodes": 0}, "nodes must be an integer >= 1, got 0"),
        ({"tp": -2}, "tp must be an integer >= 1, got -2"),
        ({"seq_len": 2.5}, "seq_len must be an integer >= 1, got 2.5"),
        ({"lr": float("nan")}, "lr must be positive, got nan"),
        ({"model": "13b"}, "model '13b' is not a preset; use one of ['7b', 'tiny']"),
        ({"decay_style": "step"}, "decay_style 'step' is not one of linear, cosine, 1-sqrt"),
        ({"selected_tokenized": CORPUS}, "the selected folder is the corpus folder"),
        ({"selected_tokenized": ""}, "selected_tokenized is empty"),
        ({"token_counts": (10**9, 10**8)}, "token_counts needs one count per folder (1)"),
        ({"token_counts": (0,)}, "each of token_counts must be an integer >= 1, got 0"),
    ],
)
def test_a_bad_value_is_refused_in_one_line(bad, message):
    with pytest.raises(ValueError) as error:
        PlanSettings(CORPUS, **{**TINY, **bad})
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_the_command_line_refuses_a_bad_value_before_writing(tmp_path, capsys):
    out = tmp_path / "run.yaml"
    argv = ["nanotron-config", "--corpus-tokenized", CORPUS, "--out", str(out)]
    assert main([*argv, "--model", "tiny", "--tokens", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ai-filters: error: tokens must be an integer >= 1, got 0")
    assert err.count("\n") == 1 and not out.exists()
