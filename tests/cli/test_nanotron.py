"""``ai-filters nanotron-config``: writes YAML, launch script and plot; exit code 2 on problems."""

from __future__ import annotations

import argparse

import pytest

from ai_filters.cli.nanotron import add_parsers as add_nanotron_config_command
from ai_filters.nanotron import config_to_dict, load_config


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ai-filters")
    add_nanotron_config_command(root.add_subparsers(dest="command", required=True))
    return root


def test_cli_writes_yaml_launch_script_and_plot(tokenized, tmp_path, capsys):
    corpus, selected = tokenized
    out = tmp_path / "runs" / "ai.yaml"
    args = parser().parse_args(
        [
            "nanotron-config",
            "--corpus-tokenized",
            str(corpus),
            "--selected-tokenized",
            str(selected),
        ]
        + ["--out", str(out), "--model", "tiny", "--tokens", "3276800", "--decay-style", "1-sqrt"]
        + ["--nodes", "2", "--gpus-per-node", "4", "--lr", "2e-3"]
    )
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "train steps: 100 x 32,768 tokens per step" in printed
    assert "dp 8 x tp 1 x pp 1; micro batch 4 x gradient accumulation 1" in printed
    assert "9,978,720 parameters" in printed
    config = load_config(out)
    assert config.optimizer.learning_rate_scheduler.lr_decay_style == "1-sqrt"
    # 2e-3 / 10 in float64: equal up to a few roundings of the last bit
    assert config.optimizer.learning_rate_scheduler.min_decay_lr == pytest.approx(2e-4, rel=1e-12)
    assert config_to_dict(config)["data_stages"][0]["data"]["dataset"]["dataset_weights"] == [
        0.75,
        0.25,
    ]
    script = out.with_suffix(".slurm").read_text()
    assert "#SBATCH --nodes=2" in script and "#SBATCH --gpus-per-node=4" in script
    assert "--nproc_per_node=4" in script and f'CONFIG="${{CONFIG:-{out}}}"' in script
    assert out.with_suffix(".png").stat().st_size > 0


def test_cli_reports_every_problem_and_exits_2(tokenized, tmp_path, capsys):
    corpus, _ = tokenized
    out = tmp_path / "bad.yaml"
    args = parser().parse_args(
        ["nanotron-config", "--corpus-tokenized", str(corpus), "--out", str(out)]
        + ["--model", "tiny", "--tp", "2"]
    )
    assert args.run(args) == 2
    err = capsys.readouterr().err
    assert "num_attention_heads (3) is not divisible by parallelism.tp (2)" in err
    assert "num_key_value_heads (1) is not divisible by parallelism.tp (2)" in err
    assert not out.exists()


def test_cli_writes_a_staged_plan_and_its_first_launch_both_pass_the_check(
    tokenized, tmp_path, capsys
):
    corpus, selected = tokenized
    out = tmp_path / "staged.yaml"
    args = parser().parse_args(
        ["nanotron-config", "--corpus-tokenized", str(corpus), "--selected-tokenized"]
        + [str(selected), "--out", str(out), "--model", "tiny", "--gpus-per-node", "1"]
        + ["--tokens", str(40 * 4 * 99), "--global-batch", "4", "--seq-len", "99"]
        + ["--selection-stage", "decay", "--decay-selection-weight", "3"]
    )
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert f"data stage 'decay', steps 30 to 40: weight 0.500000 for {selected}" in printed
    stable = tmp_path / "staged.stable.yaml"
    assert [s.name for s in load_config(out).data_stages] == ["stable", "decay"]
    assert load_config(stable).tokens.train_steps == 29
    assert stable.with_suffix(".slurm").exists() and out.with_suffix(".slurm").exists()
    for config in (out, stable):
        check = parser().parse_args(["nanotron-check", str(config)])
        assert check.run(check) == 0
    report = capsys.readouterr().out
    assert "data stage 'decay': 11 steps from step 30" in report
    check = parser().parse_args(["nanotron-check", str(out), "--max-epochs", "2"])
    assert check.run(check) == 2
    # the corpus 3.87 times in the stable stage (116 of 30 samples), the selection 2.2 times in
    # the decay (22 of 10); the corpus's 0.733 in the decay passes: one line per problem
    stable_line, decay_line = capsys.readouterr().err.strip().splitlines()
    assert stable_line.startswith(f"ai-filters: error: {corpus} would be read 3.87 times")
    assert "in stage 'stable' (29 steps), more than --max-epochs 2" in stable_line
    assert decay_line.startswith(f"ai-filters: error: {selected} would be read 2.2 times")
    assert "in stage 'decay' (11 steps), more than --max-epochs 2" in decay_line


def test_cli_refuses_a_staged_plan_without_a_selection(tokenized, tmp_path):
    corpus, _ = tokenized
    args = parser().parse_args(
        ["nanotron-config", "--corpus-tokenized", str(corpus), "--out", str(tmp_path / "x.yaml")]
        + ["--selection-stage", "decay"]
    )
    with pytest.raises(ValueError, match="selection_stage 'decay' needs the tokenized selection"):
        args.run(args)
