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
