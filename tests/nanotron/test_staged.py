"""The staged plan (``selection_stage="decay"``): a stable stage on the corpus, a decay stage
with the selection up-weighted, its first launch, and the epochs each stage reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_filters.nanotron import (
    PlanSettings,
    build_config,
    config_to_dict,
    load_config,
    preflight,
    validate,
)
from ai_filters.nanotron.plan import first_launch
from ai_filters.training import wsd_phases

STEPS, BATCH, SEQ_LEN = 40, 4, 99  # samples of 100 tokens


def staged(corpus: Path, selected: Path, weight: float | None = None, **kwargs) -> PlanSettings:
    """A tiny staged run of 40 steps of 4 sequences of 99 tokens."""
    return PlanSettings(
        str(corpus),
        str(selected),
        model="tiny",
        tokens=STEPS * BATCH * SEQ_LEN,
        global_batch=BATCH,
        seq_len=SEQ_LEN,
        gpus_per_node=1,
        selection_stage="decay",
        decay_selection_weight=weight,
        **kwargs,
    )


def test_the_decay_stage_starts_at_the_wsd_decay_start_with_the_selection_up_weighted(tokenized):
    corpus, selected = tokenized  # 3,000 and 1,000 tokens
    config = build_config(staged(corpus, selected, weight=3.0)).config
    decay_start = config.optimizer.learning_rate_scheduler.lr_decay_starting_step
    assert decay_start == wsd_phases(STEPS).decay_start == 30
    stable, decay = config.data_stages
    assert (stable.name, stable.start_training_step) == ("stable", 1)
    assert (decay.name, decay.start_training_step) == ("decay", decay_start)
    assert stable.data.dataset.dataset_folder == [str(corpus)]
    assert stable.data.dataset.dataset_weights == [1.0]
    assert decay.data.dataset.dataset_folder == [str(corpus), str(selected)]
    # corpus 3,000 tokens, selection 1,000 x 3: even weights (1.0 would give the paper's 3:1)
    assert decay.data.dataset.dataset_weights == [0.5, 0.5]
    assert load_config(config_to_dict(config)) == config  # the strict loader takes it back
    validate(config, world_size=1, global_batch=BATCH, check_folders=True)


def test_the_default_weight_doubles_the_selection_share(tokenized):
    corpus, selected = tokenized
    config = build_config(staged(corpus, selected)).config
    assert config.data_stages[1].data.dataset.dataset_weights == [0.6, 0.4]  # 3,000 : 2 x 1,000


def test_all_is_the_one_stage_plan_of_before(tokenized):
    corpus, selected = tokenized
    default = PlanSettings(str(corpus), str(selected), model="tiny", gpus_per_node=1)
    explicit = PlanSettings(
        str(corpus), str(selected), model="tiny", gpus_per_node=1, selection_stage="all"
    )
    config = build_config(default).config
    assert build_config(explicit).config == config
    (stage,) = config.data_stages
    assert (stage.name, stage.data.dataset.dataset_weights) == ("corpus + selection", [0.75, 0.25])


def test_the_first_launch_runs_the_stable_stage_up_to_the_step_before_the_decay(tokenized):
    corpus, selected = tokenized
    plan = build_config(staged(corpus, selected))
    first = first_launch(plan).config
    assert first.tokens.train_steps == 29
    assert [stage.name for stage in first.data_stages] == ["stable"]
    assert first.data_stages[0] == plan.config.data_stages[0]
    assert first.optimizer == plan.config.optimizer  # the whole run's schedule, resumed later
    assert first.checkpoints == plan.config.checkpoints  # same path: the relaunch resumes there
    assert first.checkpoints.save_final_state  # the checkpoint of step 29
    validate(first, world_size=1, global_batch=BATCH, check_folders=True)
    with pytest.raises(ValueError, match="first_launch is for a staged plan"):
        first_launch(build_config(PlanSettings(str(corpus), model="tiny", gpus_per_node=1)))


def test_epochs_are_counted_per_stage(tokenized):
    corpus, selected = tokenized
    config = build_config(staged(corpus, selected, weight=3.0)).config
    result = preflight(config)
    assert result.passed, result.problems
    uses = {(use.stage, use.folder): use for use in result.folders}
    # by hand: the corpus's files of 2,000 and 1,000 tokens give 20 + 10 samples of 100 tokens,
    # the selection's 1,000 tokens 10; the stable stage runs steps 1-29, the decay 30-40
    corpus_samples, selected_samples = 2000 // 100 + 1000 // 100, 1000 // 100
    stable = uses[("stable", str(corpus))]
    assert (stable.stage_steps, stable.samples_read) == (29, 29 * BATCH)
    assert stable.epochs == 29 * BATCH / corpus_samples
    for folder, samples in ((corpus, corpus_samples), (selected, selected_samples)):
        use = uses[("decay", str(folder))]
        assert (use.stage_steps, use.samples_read) == (11, 11 * BATCH // 2)  # weights 0.5
        assert use.epochs == 11 * BATCH / 2 / samples
    text = "\n".join(result.lines())
    assert "data stage 'stable': 29 steps from step 1" in text
    assert "data stage 'decay': 11 steps from step 30" in text
    assert f"| {selected} | 1 | 1,000 | 10 | 0.5 | 22 | 2.2 |" in text


def test_a_stage_repeating_its_data_beyond_max_epochs_is_refused(tokenized):
    corpus, selected = tokenized
    config = build_config(staged(corpus, selected, weight=30.0)).config
    # decay: 11 steps x 4 = 44 samples, 30,000 / 33,000 of them from the selection's 10
    (problem,) = preflight(config, max_epochs=3.9).problems
    assert problem == (
        f"{selected} would be read 4 times (40 samples of 10) in stage 'decay' (11 steps), more "
        "than --max-epochs 3.9: train fewer steps or on more data"
    )
    assert preflight(config, max_epochs=4).passed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"selected_tokenized": None}, "selection_stage 'decay' needs the tokenized selection"),
        ({"decay_selection_weight": 0.0}, "decay_selection_weight must be a finite number > 0"),
        ({"decay_selection_weight": -1.0}, "decay_selection_weight must be a finite number > 0"),
        ({"selection_stage": "all", "decay_selection_weight": 2.0}, "only used with"),
        ({"selection_stage": "late"}, "selection_stage 'late' is not one of all, decay"),
    ],
)
def test_bad_stage_settings_are_refused_in_one_line(kwargs, message):
    base = {"corpus_tokenized": "c.s3", "selected_tokenized": "s.s3", "selection_stage": "decay"}
    with pytest.raises(ValueError, match=message) as error:
        PlanSettings(**(base | kwargs))
    assert "\n" not in str(error.value)
