"""The weak-to-strong proxy pretraining experiment: schedule, budgets, determinism, controls.

Training runs are real (transformers' Trainer on CPU, the embedded tokenizer, real text) but
tiny: hidden 32, 2 layers, 8 steps of 2 x 32 tokens.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import shutil
from pathlib import Path

import pytest
import torch

from ai_filters.corpus import local_corpus
from ai_filters.documents import DocumentWriter
from ai_filters.numerics import loss_rtol
from ai_filters.proxy import (
    Arm,
    ProxySize,
    RunContext,
    TokenCache,
    WSDSchedule,
    heldout_blocks,
    heldout_loss,
    load_tokenizer,
    local_heldout,
    pack_blocks,
    reasoning_problems,
    run_experiment,
    token_matched_random,
    tokens_per_domain,
    train_arm,
)


def load_pipeline():
    """``pipelines/proxy_pretrain.py`` as a module (pipelines are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "pipelines" / "proxy_pretrain.py"
    spec = importlib.util.spec_from_file_location("proxy_pretrain", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


proxy_pretrain = load_pipeline()

TINY = ProxySize(
    hidden=32,
    layers=2,
    heads=2,
    kv_heads=1,
    intermediate=64,
    seq_len=32,
    batch_size=2,
    grad_accum=1,
    steps=8,
    lr=3e-3,
    bf16=False,
    logging_steps=1,
    eval_points=2,
)


@pytest.fixture(scope="module")
def tokens() -> TokenCache:
    return TokenCache(load_tokenizer("smollm2-135m"))


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return local_corpus(6, seed=0, chunk_chars=1200)


def top_fraction(documents: list[dict], key, fraction: float = 0.2) -> list[dict]:
    """The first ``fraction`` of each domain's documents ordered by ``key`` (a stand-in
    selection: the tests need a selection, not a good one)."""
    picked = []
    for domain in sorted({d["metadata"]["domain"] for d in documents}):
        pool = sorted((d for d in documents if d["metadata"]["domain"] == domain), key=key)
        picked += pool[: max(1, round(fraction * len(pool)))]
    return picked


def with_random_scores(documents: list[dict], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{**d, "metadata": {**d["metadata"], "random_score": rng.random()}} for d in documents]


@pytest.fixture(scope="module")
def experiment(tokens, corpus) -> dict:
    """Three arms trained with seed 0: corpus, corpus + a selection, corpus + matched random."""
    selection = top_fraction(corpus, key=lambda d: -len(d["text"]))
    targets = tokens_per_domain(selection, tokens)
    random_docs = token_matched_random(with_random_scores(corpus), targets, tokens)
    arms = [
        Arm("corpus", corpus),
        Arm("corpus+longest", corpus, selection),
        Arm("corpus+random", corpus, random_docs),
    ]
    heldout = reasoning_problems(8)
    return run_experiment(arms, heldout, TINY, tokens, seed=0, progress=False)


def test_wsd_phases_at_the_right_steps() -> None:
    schedule = WSDSchedule(4000)
    assert (schedule.warmup_steps, schedule.decay_start, schedule.decay_steps) == (4, 3000, 1000)
    assert [schedule.factor(i) for i in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert schedule.factor(2999) == 1.0
    assert schedule.factor(3000) < 1.0
    # float64 formulas: equal up to a few roundings of the last bit
    assert schedule.factor(3500) == pytest.approx(1 - 0.9 * 501 / 1000, rel=1e-12)
    assert schedule.factor(3999) == pytest.approx(0.1, rel=1e-12)
    decay = [schedule.factor(i) for i in range(3000, 4000)]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))
    short = WSDSchedule(100)  # 0.1 % of 100 steps rounds to 0: at least one warmup step
    assert (short.warmup_steps, short.decay_start) == (1, 75)


def test_trainer_follows_the_schedule(experiment) -> None:
    """The LR of each real optimizer update: peak from the first step (1 warmup step), decay
    from step 6 of 8 (75 %), the last update at 10 % of the peak."""
    lrs = experiment["arms"][0]["learning_rates"]
    assert len(lrs) == TINY.steps
    # float64 schedule factors times the peak: equal up to a few roundings of the last bit
    assert lrs[:6] == pytest.approx([TINY.lr] * 6, rel=1e-12)
    assert lrs[6] == pytest.approx(TINY.lr * (1 - 0.9 / 2), rel=1e-12)
    assert lrs[7] == pytest.approx(TINY.lr * 0.1, rel=1e-12)
    assert experiment["settings"]["schedule"]["decay_start"] == 6


def test_every_arm_gets_the_same_budget_and_schedule(experiment) -> None:
    arms = experiment["arms"]
    budget = TINY.steps * TINY.batch_size * TINY.seq_len
    assert [a["training_tokens"] for a in arms] == [budget] * 3
    assert all(a["learning_rates"] == arms[0]["learning_rates"] for a in arms)
    assert all([e["step"] for e in a["train_loss"]] == list(range(1, 9)) for a in arms)
    # the mixes differ: the selection arms are bigger by their selection, same unique tokens
    corpus, longest, matched = arms
    assert corpus["selection_tokens"] == 0
    assert longest["mix_tokens"] == corpus["mix_tokens"] + longest["selection_tokens"]
    assert longest["unique_tokens"] == matched["unique_tokens"] == corpus["unique_tokens"]
    assert corpus["train_loss"] != longest["train_loss"]
    assert set(corpus["heldout"]) == {"reasoning"}


def test_a_run_is_deterministic_with_a_seed(experiment, tokens, corpus) -> None:
    heldout = heldout_blocks(reasoning_problems(8), tokens, TINY.seq_len)
    arm = Arm("corpus", corpus)
    again = train_arm(arm, RunContext(TINY, 0, tokens, heldout, progress=False))
    other = train_arm(arm, RunContext(TINY, 1, tokens, heldout, progress=False))
    first = experiment["arms"][0]
    assert again["train_loss"] == first["train_loss"]
    assert again["heldout"] == first["heldout"]
    assert other["train_loss"] != first["train_loss"]
    assert other["heldout"] != first["heldout"]


def test_random_control_matches_selection_tokens_per_domain(tokens) -> None:
    documents = local_corpus(12, seed=1, chunk_chars=1200)
    selection = top_fraction(documents, key=lambda d: -len(d["text"]), fraction=0.25)
    targets = tokens_per_domain(selection, tokens)
    picked = token_matched_random(with_random_scores(documents, seed=3), targets, tokens)
    got = tokens_per_domain(picked, tokens)
    assert set(got) == set(targets) == {"web", "textbook", "code", "math"}
    for domain, target in targets.items():
        sizes = [len(tokens.ids(d)) for d in documents if d["metadata"]["domain"] == domain]
        assert abs(got[domain] - target) <= max(sizes) / 2, domain
    assert {d["id"] for d in picked} != {d["id"] for d in selection}


def test_random_control_takes_the_highest_scores_first(tokens) -> None:
    documents = with_random_scores(local_corpus(12, seed=1, chunk_chars=1200), seed=5)
    web = [d for d in documents if d["metadata"]["domain"] == "web"]
    picked = token_matched_random(documents, {"web": 1500}, tokens)
    ranked = sorted(web, key=lambda d: -d["metadata"]["random_score"])
    assert [d["id"] for d in picked] == [d["id"] for d in ranked[: len(picked)]]
    with pytest.raises(ValueError, match="domain 'nope'"):
        token_matched_random(documents, {"nope": 10}, tokens)


def test_pack_blocks_shuffles_with_the_seed_and_separates_documents(tokens, corpus) -> None:
    lists = [tokens.ids(d) for d in corpus]
    assert all(ids[-1] == tokens.eos_id for ids in lists)
    blocks = pack_blocks(lists, 64, seed=0)
    assert blocks.shape == (sum(map(len, lists)) // 64, 64)
    assert torch.equal(blocks, pack_blocks(lists, 64, seed=0))
    assert not torch.equal(blocks, pack_blocks(lists, 64, seed=1))
    plain = pack_blocks(lists, 64).flatten().tolist()
    assert plain[: len(lists[0]) + len(lists[1])] == [*lists[0], *lists[1]]


def test_heldout_loss_is_the_token_mean_cross_entropy(tokens) -> None:
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(TINY.llama_config(tokens.vocab_size))
    blocks = heldout_blocks(reasoning_problems(3), tokens, TINY.seq_len)["reasoning"]
    full = blocks[:-1]
    expected = model(input_ids=full, labels=full).loss.item()
    rtol = loss_rtol(model.config, TINY.seq_len)  # batches of 3 rows instead of all at once
    assert heldout_loss(model, full, batch_size=3) == pytest.approx(expected, rel=rtol)
    assert (blocks[-1] == -100).any()  # the partial last block is kept, padded
    assert heldout_loss(model, blocks, batch_size=2) != pytest.approx(expected, rel=rtol)


def test_heldout_shares_no_source_text_with_the_corpus(corpus) -> None:
    heldout = local_heldout([d["id"] for d in corpus], per_domain=5)
    parents = {d["id"].split("#")[0] for d in corpus}
    assert len(heldout) == 20
    assert not {d["id"].split("#")[0] for d in heldout} & parents
    assert not {d["text"] for d in heldout} & {d["text"] for d in corpus}


def test_reasoning_problems_are_deterministic_and_correct() -> None:
    problems = reasoning_problems(12, seed=4)
    assert problems == reasoning_problems(12, seed=4)
    assert problems != reasoning_problems(12, seed=5)
    for problem in problems:
        text = problem["text"]
        assert text.startswith("Problem:") and "\nAnswer:" in text
        equation = re.match(r"Problem: Solve (\d+)x \+ (\d+) = (-?\d+)", text)
        if equation:
            a, b, c = map(int, equation.groups())
            x = int(re.search(r"Answer: x = (-?\d+)", text).group(1))
            assert a * x + b == c


def write_demo_layout(out: Path, corpus: list[dict]) -> None:
    """The folders ``make demo`` and the two control selections write, with stand-in picks."""
    scored = with_random_scores(corpus)
    by_length = top_fraction(corpus, key=lambda d: -len(d["text"]))
    by_id = top_fraction(corpus, key=lambda d: d["id"])
    for domain in {d["metadata"]["domain"] for d in corpus}:
        for folder, docs, name in (
            ("corpus", corpus, "00000.jsonl.gz"),
            ("controls/random/scored", scored, "00000.jsonl.gz"),
            ("selected/data", by_length, "00000.parquet"),
            ("controls/perplexity/selected/data", by_id, "00000.parquet"),
        ):
            with DocumentWriter(out / folder / domain / name) as writer:
                for document in docs:
                    if document["metadata"]["domain"] == domain:
                        writer.write(document)


def test_demo_command_writes_four_arms(tmp_path, corpus, capsys) -> None:
    write_demo_layout(tmp_path, corpus)
    tiny = ["--hidden", "32", "--layers", "2", "--seq-len", "32", "--batch-size", "2"]
    args = ["--demo", "--out", str(tmp_path), "--steps", "4", "--reasoning", "4", *tiny]
    args += ["--eval-points", "1", "--heldout-per-domain", "3"]
    assert proxy_pretrain.main([*args, "--no-progress"]) == 0
    results = json.loads((tmp_path / "proxy" / "results.json").read_text())
    names = [a["name"] for a in results["arms"]]
    assert names == [
        "corpus",
        "corpus+attention_influence",
        "corpus+random",
        "corpus+perplexity",
    ]
    assert len({a["training_tokens"] for a in results["arms"]}) == 1
    for arm in results["arms"]:
        assert set(arm["heldout"]) == {"web", "textbook", "code", "math", "reasoning"}
    assert results["settings"]["heldout"]["web"]["documents"] == 3
    table = (tmp_path / "proxy" / "results.md").read_text()
    assert all(f"| {name} |" in table for name in names)
    assert (tmp_path / "proxy" / "loss_curves.png").stat().st_size > 0
    assert "corpus+perplexity" in capsys.readouterr().out


def test_demo_command_names_the_missing_control(tmp_path, corpus) -> None:
    write_demo_layout(tmp_path, corpus)
    shutil.rmtree(tmp_path / "controls" / "perplexity")
    with pytest.raises(SystemExit, match="--scorer perplexity"):
        proxy_pretrain.main(["--demo", "--out", str(tmp_path)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_gpu_size_on_a_cpu_asks_for_fp32(tmp_path) -> None:
    with pytest.raises(SystemExit, match="--precision fp32"):
        proxy_pretrain.main(["--demo", "--out", str(tmp_path), "--size", "gpu"])
