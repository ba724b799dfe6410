"""build_config: presets, steps, parallelism, schedule and weights of a planned run."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ai_filters.nanotron import (
    PRESETS,
    PlanSettings,
    build_config,
    global_batch_size,
    load_config,
    validate,
)
from ai_filters.training import parameter_count
from tests.nanotron.helpers import COSMO2, SHIPPED, write_tokenized


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


def test_build_config_weights_steps_and_accumulation(tokenized):
    corpus, selected = tokenized
    settings = PlanSettings(
        str(corpus), str(selected), model="tiny", tokens=100 * 32 * 1024, nodes=1, gpus_per_node=2
    )
    plan = build_config(settings)
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
    capped = build_config(
        PlanSettings(str(corpus), model="tiny", gpus_per_node=2, max_micro_batch=6)
    )
    assert (
        capped.config.tokens.micro_batch_size,
        capped.config.tokens.batch_accumulation_per_replica,
    ) == (4, 4)
    assert capped.config.data_stages[0].data.dataset.dataset_weights == [1.0]


def test_build_config_rounds_steps_and_reports_real_tokens(tokenized):
    corpus, _ = tokenized
    plan = build_config(PlanSettings(str(corpus), model="tiny", tokens=10_000_000, gpus_per_node=1))
    assert plan.config.tokens.train_steps == 305  # 10M / 32,768 = 305.2
    summary = "\n".join(plan.summary())
    assert "= 9,994,240 tokens (asked: 10,000,000)" in summary
    assert "counted from the .ds files" in summary


def test_build_config_refuses_batches_that_do_not_split(tokenized):
    corpus, _ = tokenized
    with pytest.raises(ValueError, match="global batch 30 is not divisible by dp 8"):
        build_config(PlanSettings(str(corpus), model="tiny", global_batch=30, gpus_per_node=8))


def test_folders_tokenized_differently_are_refused(tmp_path, tokenized):
    corpus, _ = tokenized
    other = write_tokenized(
        tmp_path / "tokenized.s3" / "other", "other", [[1, 2, 3]], tokenizer="gpt2"
    )
    with pytest.raises(ValueError, match="different tokenizers"):
        build_config(PlanSettings(str(corpus), str(other), model="tiny", gpus_per_node=1))
