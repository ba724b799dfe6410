"""Training through transformers' Trainer: its WSD schedule, its evaluation, budgets, seeds.

Training runs are real (Trainer on CPU, the embedded tokenizer, real text) but tiny: hidden 32,
2 layers, 8 steps of 2 x 32 tokens.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ai_filters.engine.numerics import loss_rtol
from ai_filters.proxy import (
    Arm,
    BlockDataset,
    RunContext,
    heldout_blocks,
    initial_model,
    reasoning_problems,
    run_experiment,
    token_matched_random,
    tokens_per_domain,
    train_arm,
    training_arguments,
)
from tests.proxy.helpers import TINY, top_fraction, with_random_scores


@pytest.fixture(scope="module")
def experiment(tokens, corpus) -> dict:
    """Three arms trained with seeds 0 and 1: corpus, corpus + a selection, corpus + matched
    random."""
    selection = top_fraction(corpus, key=lambda d: -len(d["text"]))
    targets = tokens_per_domain(selection, tokens)
    random_docs = token_matched_random(with_random_scores(corpus), targets, tokens)
    arms = [
        Arm("corpus", corpus),
        Arm("corpus+longest", corpus, selection),
        Arm("corpus+random", corpus, random_docs),
    ]
    heldout = reasoning_problems(4)
    return run_experiment(arms, heldout, TINY, tokens, seeds=[0, 1], progress=False)


def test_trainer_follows_the_wsd_phases(experiment, tokens, tmp_path) -> None:
    """8 steps: 1 warmup step, the peak until index 6 (75 %), a linear decay over 2 steps to
    10 % of the peak at index 8, the value after the last update; update k runs at index k - 1."""
    from transformers import LlamaForCausalLM, Trainer

    model = LlamaForCausalLM(TINY.llama_config(tokens.vocab_size))
    args = training_arguments(TINY, 0, str(tmp_path), progress=False)
    blocks = heldout_blocks(reasoning_problems(2), tokens, TINY.seq_len)["reasoning"]
    trainer = Trainer(model=model, args=args, eval_dataset={"reasoning": BlockDataset(blocks)})
    trainer.create_optimizer_and_scheduler(num_training_steps=TINY.steps)
    factors = [trainer.lr_scheduler.lr_lambdas[0](i) for i in range(TINY.steps + 1)]
    assert experiment["settings"]["schedule"]["decay_start"] == 6
    # float64 schedule factors: equal up to a few roundings of the last bit
    expected = [0.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1 - 0.9 / 2, 0.1]  # warmup from min_lr_ratio
    assert factors == pytest.approx(expected, rel=1e-12)
    # the LR each real optimizer update of a trained arm ran at (float64 factor x peak, as above)
    lrs = experiment["arms"][0]["runs"][0]["learning_rates"]
    assert lrs == pytest.approx([TINY.lr * f for f in expected[: TINY.steps]], rel=1e-12)


def test_every_arm_gets_the_same_budget_and_schedule(experiment) -> None:
    arms = experiment["arms"]
    runs = [run for a in arms for run in a["runs"]]
    budget = TINY.steps * TINY.batch_size * TINY.seq_len
    assert [a["training_tokens"] for a in arms] == [budget] * 3
    assert all(r["learning_rates"] == runs[0]["learning_rates"] for r in runs)
    assert all([e["step"] for e in r["train_loss"]] == list(range(1, 9)) for r in runs)
    assert all([e["step"] for e in r["heldout_during_training"]] == [4, 8] for r in runs)
    # the mixes differ: the selection arms are bigger by their selection, same unique tokens
    corpus, longest, matched = arms
    assert corpus["selection_tokens"] == 0
    assert longest["mix_tokens"] == corpus["mix_tokens"] + longest["selection_tokens"]
    assert longest["unique_tokens"] == matched["unique_tokens"] == corpus["unique_tokens"]
    assert corpus["runs"][0]["train_loss"] != longest["runs"][0]["train_loss"]
    assert set(corpus["heldout"]) == {"reasoning"}


def test_a_run_is_deterministic_with_a_seed(experiment, tokens, corpus) -> None:
    heldout = heldout_blocks(reasoning_problems(4), tokens, TINY.seq_len)
    again = train_arm(Arm("corpus", corpus), RunContext(TINY, 1, tokens, heldout, progress=False))
    first, second = experiment["arms"][0]["runs"]
    assert again["train_loss"] == second["train_loss"]
    assert again["heldout"] == second["heldout"]
    assert again["train_loss"] != first["train_loss"]
    assert again["heldout"] != first["heldout"]


def test_trainer_eval_loss_is_the_token_mean_cross_entropy(tokens, tmp_path) -> None:
    from transformers import LlamaForCausalLM, Trainer

    torch.manual_seed(0)
    model = LlamaForCausalLM(TINY.llama_config(tokens.vocab_size))
    blocks = heldout_blocks(reasoning_problems(3), tokens, TINY.seq_len)["reasoning"]
    expected = model(input_ids=blocks, labels=blocks).loss.item()  # every token in one pass
    args = training_arguments(TINY, 0, str(tmp_path), progress=False)
    trainer = Trainer(model=model, args=args, eval_dataset={"reasoning": BlockDataset(blocks)})
    got = trainer.evaluate()["eval_reasoning_loss"]
    rtol = loss_rtol(model.config, TINY.seq_len)  # one block per pass instead of all at once
    assert got == pytest.approx(expected, rel=rtol)


def test_too_few_steps_for_the_schedule_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="1 steps leave no room for a warmup of 1"):
        training_arguments(replace(TINY, steps=1), 0, str(tmp_path), progress=False)


def test_n_seeds_give_n_runs_per_arm_with_identical_budgets(experiment) -> None:
    assert experiment["settings"]["seeds"] == [0, 1]
    for arm in experiment["arms"]:
        runs = arm["runs"]
        assert [r["seed"] for r in runs] == [0, 1]
        assert runs[0]["learning_rates"] == runs[1]["learning_rates"]
        assert [e["step"] for e in runs[1]["train_loss"]] == [
            e["step"] for e in runs[0]["train_loss"]
        ]
        assert runs[0]["train_loss"] != runs[1]["train_loss"]
        # the summaries are over exactly these runs
        assert arm["heldout_mean"]["values"] == [r["heldout_mean"] for r in runs]
        assert arm["heldout"]["reasoning"]["values"] == [r["heldout"]["reasoning"] for r in runs]
        assert arm["heldout_mean"]["std"] > 0
    assert len({a["training_tokens"] for a in experiment["arms"]}) == 1


def test_the_seed_sets_the_initial_weights_alike_for_every_arm(tokens) -> None:
    first, again, other = (
        initial_model(TINY, tokens.vocab_size, s).state_dict() for s in (0, 0, 1)
    )
    assert all(torch.equal(first[name], again[name]) for name in first)
    redrawn = {name for name in first if not torch.equal(first[name], other[name])}
    # every random matrix is drawn anew; the RMSNorm weights start at 1 whatever the seed
    assert redrawn == {name for name in first if "norm" not in name}
    assert "model.embed_tokens.weight" in redrawn


def test_the_seed_sets_the_order_trainer_draws_the_blocks_in(tokens, tmp_path) -> None:
    """Block ``i`` holds the token ``i``, so a batch's first column is the blocks it drew."""
    from transformers import Trainer

    blocks = torch.arange(16).repeat_interleave(TINY.seq_len).view(16, TINY.seq_len)

    def drawn(seed: int) -> list[int]:
        args = training_arguments(TINY, seed, str(tmp_path), progress=False)
        model = initial_model(TINY, tokens.vocab_size, seed)
        dataset = BlockDataset(blocks)
        trainer = Trainer(model=model, args=args, train_dataset=dataset, eval_dataset=dataset)
        return [i for b in trainer.get_train_dataloader() for i in b["input_ids"][:, 0].tolist()]

    first = drawn(0)
    assert sorted(first) == list(range(16))  # one epoch: every block once
    assert drawn(0) == first
    assert drawn(1) != first
