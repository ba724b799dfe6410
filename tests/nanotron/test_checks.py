"""validate: every rule names what is wrong and how to fix it."""

from __future__ import annotations

import copy

import pytest

from ai_filters.nanotron import (
    NanotronConfigError,
    PlanSettings,
    build_config,
    load_config,
    validate,
)
from tests.nanotron.helpers import problems_of, shipped_dict, write_tokenized


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


def test_missing_decay_steps_suggest_the_wsd_phases():
    data = shipped_dict()
    del data["optimizer"]["learning_rate_scheduler"]["lr_decay_steps"]
    assert "decay the last 25%, e.g. 89407 and 29802" in problems_of(data)


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


def test_folders_with_out_of_vocab_tokens_fail_the_folder_check(tmp_path, tokenized):
    corpus, _ = tokenized
    bad = write_tokenized(tmp_path / "tokenized.s3" / "bad", "bad", [[1, 2, 60_000]])
    plan = build_config(PlanSettings(str(corpus), str(bad), model="tiny", gpus_per_node=1))
    with pytest.raises(
        NanotronConfigError, match="holds token id 60,000, outside the model.s vocab"
    ):
        validate(plan.config, check_folders=True)


def test_a_tokenizer_file_is_refused_because_nanotron_needs_a_hub_id_or_folder(tmp_path):
    folder = write_tokenized(
        tmp_path / "tokenized.s3" / "c", "c", [[1, 2, 3]], tokenizer="/m/tokenizer.json"
    )
    with pytest.raises(
        NanotronConfigError, match="is a file: nanotron loads it with AutoTokenizer"
    ):
        build_config(PlanSettings(str(folder), model="tiny", gpus_per_node=1))
