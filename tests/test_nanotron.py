"""nanotron configs: strict schema, validation messages, LR schedule, .ds folders, CLI."""

from __future__ import annotations

import argparse
import copy
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from datatrove.pipeline.tokens.tokenizer import TokenizedFile

from ai_filters.cli.nanotron import add_parsers as add_nanotron_config_command
from ai_filters.nanotron import (
    PRESETS,
    NanotronConfigError,
    build_config,
    config_to_dict,
    global_batch_size,
    load_config,
    lr_at,
    parameter_count,
    plot_schedule,
    read_tokenized_folder,
    validate,
    write_shipped,
)

SHIPPED = Path(__file__).resolve().parent.parent / "nanotron_configs"
SHIPPED_NAMES = ["smollm_7b_wsd_baseline", "smollm_7b_wsd_attention_influence", "tiny_smoke"]
COSMO2 = "HuggingFaceTB/cosmo2-tokenizer"


def shipped_dict(name: str = "smollm_7b_wsd_attention_influence") -> dict:
    return yaml.safe_load((SHIPPED / f"{name}.yaml").read_text())


def problems_of(data: dict, **kwargs) -> str:
    """All problem messages of a config dict, joined (fails the test if there are none)."""
    with pytest.raises(NanotronConfigError) as error:
        validate(load_config(data), **kwargs)
    return "\n".join(error.value.problems)


def write_tokenized(folder: Path, name: str, files: list[list[int]], tokenizer=COSMO2) -> Path:
    """A folder laid out as datatrove's DocumentTokenizerMerger writes it: 000_<name>.ds (+ .index,
    .metadata) per output file and a total <name>.ds.metadata, via datatrove's own TokenizedFile."""
    total = 0
    for i, tokens in enumerate(files):
        out = TokenizedFile(
            str(folder),
            f"{i:03d}_{name}.ds",
            tokenizer_name_or_path=tokenizer,
            save_final_metadata=True,
        )
        out.write(tokens, None)
        out.close()
        total += len(tokens)
    out.write_final_metadata(total, filename=f"{name}.ds")
    return folder


# --- shipped configs ---


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_shipped_configs_load_strictly_and_validate(name):
    config = load_config(SHIPPED / f"{name}.yaml")
    world = 1 if name == "tiny_smoke" else 64 * 8
    validate(config, world_size=world, global_batch=32 if name == "tiny_smoke" else 1024)
    assert (SHIPPED / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    script = (SHIPPED / f"{name}.slurm").read_text()
    assert '--config-file "$CONFIG"' in script and f"nanotron_configs/{name}.yaml" in script
    subprocess.run(["bash", "-n", str(SHIPPED / f"{name}.slurm")], check=True)


def test_shipped_files_are_what_the_generator_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_shipped("nanotron_configs")
    for name in SHIPPED_NAMES:
        for suffix in (".yaml", ".slurm"):
            generated = (tmp_path / "nanotron_configs" / f"{name}{suffix}").read_text()
            assert generated == (SHIPPED / f"{name}{suffix}").read_text(), f"regenerate {name}"


def test_7b_run_matches_the_paper():
    config = load_config(SHIPPED / "smollm_7b_wsd_attention_influence.yaml")
    tokens, par = config.tokens, config.parallelism
    assert tokens.train_steps == 119_209  # 1T / (1,024 x 8,192) = 119,209.3
    assert global_batch_size(config) * tokens.sequence_length == 8_388_608
    assert (par.dp, par.tp, par.pp) == (256, 2, 1)
    assert (tokens.micro_batch_size, tokens.batch_accumulation_per_replica) == (1, 4)
    schedule = config.optimizer.learning_rate_scheduler
    assert (schedule.lr_warmup_steps, schedule.lr_decay_starting_step) == (119, 89_407)
    assert schedule.lr_decay_steps == 29_802 and schedule.learning_rate == 4e-4
    weights = config.data_stages[0].data.dataset.dataset_weights
    # the config's weights are token shares rounded to 6 decimals
    assert weights == pytest.approx([238.3 / 311.4, 73.1 / 311.4], abs=1e-6)


def test_7b_parameter_count_is_the_papers_6_98b_with_ffn_13312():
    model = load_config(SHIPPED / "smollm_7b_wsd_baseline.yaml").model.model_config
    assert model.intermediate_size == 13_312
    assert parameter_count(model) == 6_979_588_096
    assert parameter_count(replace(model, intermediate_size=8192)) == 4_966_322_176
    assert 9.9e6 < parameter_count(PRESETS["tiny"].model) < 10.1e6


# --- strict loading and validation messages ---


def test_unknown_key_is_named_with_a_suggestion():
    data = shipped_dict()
    data["optimizer"]["learning_rate_scheduler"]["lr_decay_stylee"] = "linear"
    with pytest.raises(NanotronConfigError) as error:
        load_config(data)
    assert error.value.problems == [
        "optimizer.learning_rate_scheduler.lr_decay_stylee is not a field; "
        "did you mean lr_decay_style?"
    ]


def test_wrong_types_and_missing_keys_are_all_reported():
    data = shipped_dict()
    data["optimizer"]["learning_rate_scheduler"]["learning_rate"] = "4e-4"
    data["tokens"]["train_steps"] = True
    del data["parallelism"]["dp"]
    data["parallelism"]["tp_mode"] = "SCATTER"
    with pytest.raises(NanotronConfigError) as error:
        load_config(data)
    text = "\n".join(error.value.problems)
    assert len(error.value.problems) == 4
    assert "learning_rate: expected float, got '4e-4' (YAML reads 4e-4 as text" in text
    assert "tokens.train_steps: expected int, got True" in text
    assert "parallelism.dp is required" in text
    assert "parallelism.tp_mode: 'SCATTER' is not allowed; use one of 'ALL_REDUCE'" in text


def test_missing_min_decay_lr_says_there_would_be_no_decay():
    data = shipped_dict()
    del data["optimizer"]["learning_rate_scheduler"]["min_decay_lr"]
    assert problems_of(data) == (
        "set optimizer.learning_rate_scheduler.min_decay_lr (e.g. 4.0e-05); without it nanotron "
        "decays to the peak LR, i.e. no decay"
    )


def test_decay_past_train_steps_names_the_right_length():
    data = shipped_dict()
    data["optimizer"]["learning_rate_scheduler"]["lr_decay_steps"] = 30_000
    text = problems_of(data)
    assert (
        "lr_decay_starting_step + lr_decay_steps = 119407, but tokens.train_steps = 119209" in text
    )
    assert "set lr_decay_steps to 29802" in text


def test_decay_must_start_after_warmup():
    data = shipped_dict("tiny_smoke")
    data["optimizer"]["learning_rate_scheduler"].update(
        lr_decay_starting_step=1, lr_decay_steps=304
    )
    assert "lr_decay_starting_step (1) must come after lr_warmup_steps (1)" in problems_of(data)


def test_heads_not_divisible_by_tp():
    data = shipped_dict()
    data["parallelism"].update(tp=3, dp=170)
    text = problems_of(data, world_size=512)
    assert "num_attention_heads (32) is not divisible by parallelism.tp (3)" in text
    assert "num_key_value_heads (8) is not divisible by parallelism.tp (3)" in text
    assert "dp*tp*pp*cp = 510 but the launch has 512 GPUs" in text


def test_kv_heads_limit_tp():
    data = shipped_dict()
    data["parallelism"].update(tp=16, dp=32)
    text = problems_of(data, world_size=512)
    assert "num_key_value_heads (8) is not divisible by parallelism.tp (16)" in text
    assert "use tp <= 8" in text


def test_vocab_must_match_the_dataset():
    data = shipped_dict()
    data["model"]["model_config"]["vocab_size"] = 50_257
    text = problems_of(data)
    assert (
        "vocab_size (50257) does not match data_stages[0].data.dataset.vocab_size (49152)" in text
    )


def test_weights_one_per_folder_and_positive():
    data = shipped_dict()
    data["data_stages"][0]["data"]["dataset"]["dataset_weights"] = [1.0]
    assert "dataset_weights has 1 entries for 2 folders" in problems_of(data)
    data["data_stages"][0]["data"]["dataset"]["dataset_weights"] = [1.0, 0.0]
    assert "dataset_weights must all be positive" in problems_of(data)
    data["data_stages"][0]["data"]["dataset"]["dataset_weights"] = None
    assert "without them nanotron blends the 2 folders equally" in problems_of(data)


def test_global_batch_is_checked_when_given():
    config = load_config(shipped_dict())
    validate(config, global_batch=1024)
    with pytest.raises(NanotronConfigError, match="= 1024, not the 2048 sequences asked"):
        validate(config, global_batch=2048)


def test_missing_sections_and_dummy_data_are_refused():
    data = shipped_dict()
    del data["optimizer"]
    assert "add the optimizer section" in problems_of(copy.deepcopy(data))
    data = shipped_dict()
    data["data_stages"][0]["data"]["dataset"] = None
    assert "null means random tokens" in problems_of(data)


# --- the learning-rate schedule ---


def wsd(style: str = "linear"):
    """1,000 steps: warmup 10, constant to 750, decay over 250 from 1e-3 to 1e-4."""
    config = load_config(SHIPPED / "tiny_smoke.yaml")
    config.tokens.train_steps = 1000
    config.optimizer.learning_rate_scheduler = replace(
        config.optimizer.learning_rate_scheduler,
        learning_rate=1e-3,
        lr_warmup_steps=10,
        lr_decay_starting_step=750,
        lr_decay_steps=250,
        lr_decay_style=style,
        min_decay_lr=1e-4,
    )
    validate(config)
    return config


def test_schedule_warmup_stable_decay():
    config = wsd()
    expected = {0: 0.0, 5: 5e-4, 10: 1e-3, 11: 1e-3, 500: 1e-3, 749: 1e-3, 750: 1e-3}
    expected |= {800: 8.2e-4, 875: 5.5e-4, 999: 1e-4 + 9e-4 / 250, 1000: 1e-4, 1200: 1e-4}
    for step, lr in expected.items():  # float64 formula against decimal values
        assert lr_at(step, config) == pytest.approx(lr, rel=1e-9, abs=1e-15), step


@pytest.mark.parametrize(
    ("style", "at_800"),
    [
        ("linear", 1e-4 + 9e-4 * 0.8),
        ("cosine", 1e-4 + 9e-4 * 0.9045084972),
        ("1-sqrt", 1e-4 + 9e-4 * 0.5527864045),
    ],
)
def test_decay_styles(style, at_800):
    config = wsd(style)
    assert lr_at(800, config) == pytest.approx(at_800, rel=1e-8)  # constants given to 10 digits
    assert lr_at(750, config) == pytest.approx(1e-3, rel=1e-12)  # float64: last-bit rounding
    assert lr_at(1000, config) == pytest.approx(1e-4, rel=1e-12)


def test_schedule_plot(tmp_path):
    png = plot_schedule(wsd("1-sqrt"), tmp_path / "lr.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


# --- building from tokenized folders ---


@pytest.fixture
def tokenized(tmp_path):
    """corpus: 3,000 tokens in two merged files; selection: 1,000 tokens."""
    corpus = write_tokenized(tmp_path / "corpus", "corpus", [list(range(2000)), [7] * 1000])
    selected = write_tokenized(tmp_path / "selected", "selected", [list(range(1000))])
    return corpus, selected


def test_tokens_are_counted_from_the_ds_files(tokenized):
    corpus, _ = tokenized
    assert sorted(p.name for p in corpus.iterdir()) == [
        "000_corpus.ds",
        "000_corpus.ds.index",
        "000_corpus.ds.metadata",
        "001_corpus.ds",
        "001_corpus.ds.index",
        "001_corpus.ds.metadata",
        "corpus.ds.metadata",
    ]
    info = read_tokenized_folder(corpus)
    assert (info.tokens, info.token_size, info.tokenizer_name) == (3000, 2, COSMO2)
    assert info.max_token_id == 1999


def test_build_config_weights_steps_and_accumulation(tokenized):
    corpus, selected = tokenized
    plan = build_config(
        str(corpus), str(selected), model="tiny", tokens=100 * 32 * 1024, nodes=1, gpus_per_node=2
    )
    config = plan.config
    dataset = config.data_stages[0].data.dataset
    assert dataset.dataset_weights == [0.75, 0.25]
    assert dataset.dataset_folder == [str(corpus), str(selected)]
    assert dataset.tokenizer_name == config.tokenizer.tokenizer_name_or_path == COSMO2
    assert config.tokens.train_steps == 100
    assert (config.parallelism.dp, config.tokens.micro_batch_size) == (2, 16)
    assert config.tokens.batch_accumulation_per_replica == 1
    schedule = config.optimizer.learning_rate_scheduler
    assert (schedule.lr_warmup_steps, schedule.lr_decay_starting_step, schedule.lr_decay_steps) == (
        1,
        75,
        25,
    )
    validate(config, check_folders=True)
    capped = build_config(str(corpus), model="tiny", gpus_per_node=2, max_micro_batch=6)
    assert (
        capped.config.tokens.micro_batch_size,
        capped.config.tokens.batch_accumulation_per_replica,
    ) == (4, 4)
    assert capped.config.data_stages[0].data.dataset.dataset_weights == [1.0]


def test_build_config_rounds_steps_and_reports_real_tokens(tokenized):
    corpus, _ = tokenized
    plan = build_config(str(corpus), model="tiny", tokens=10_000_000, nodes=1, gpus_per_node=1)
    assert plan.config.tokens.train_steps == 305  # 10M / 32,768 = 305.2
    summary = "\n".join(plan.summary())
    assert "= 9,994,240 tokens (asked: 10,000,000)" in summary
    assert "counted from the .ds files" in summary


def test_build_config_refuses_batches_that_do_not_split(tokenized):
    corpus, _ = tokenized
    with pytest.raises(ValueError, match="global batch 30 is not divisible by dp 8"):
        build_config(str(corpus), model="tiny", global_batch=30, gpus_per_node=8)


def test_folders_with_out_of_vocab_tokens_fail_the_folder_check(tmp_path, tokenized):
    corpus, _ = tokenized
    bad = write_tokenized(tmp_path / "bad", "bad", [[1, 2, 60_000]])
    plan = build_config(str(corpus), str(bad), model="tiny", gpus_per_node=1)
    with pytest.raises(
        NanotronConfigError, match="holds token id 60000, outside the model's vocab"
    ):
        validate(plan.config, check_folders=True)


def test_folders_tokenized_differently_are_refused(tmp_path, tokenized):
    corpus, _ = tokenized
    other = write_tokenized(tmp_path / "other", "other", [[1, 2, 3]], tokenizer="gpt2")
    with pytest.raises(ValueError, match="different tokenizers"):
        build_config(str(corpus), str(other), model="tiny", gpus_per_node=1)


# --- command line ---


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


def test_a_tokenizer_file_is_refused_because_nanotron_needs_a_hub_id_or_folder(tmp_path):
    folder = write_tokenized(tmp_path / "c", "c", [[1, 2, 3]], tokenizer="/m/tokenizer.json")
    with pytest.raises(
        NanotronConfigError, match="is a file: nanotron loads it with AutoTokenizer"
    ):
        build_config(str(folder), model="tiny", gpus_per_node=1)
