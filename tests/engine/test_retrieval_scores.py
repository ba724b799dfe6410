"""The two probe scorings: gold answer fed in, and the model's own greedy answer."""

from __future__ import annotations

import pytest
import torch

from ai_filters.engine.heads import DetectionSettings, detect_heads
from ai_filters.engine.heads_file import RetrievalHeads
from ai_filters.engine.models import LoadedModel
from ai_filters.engine.probes import Probe
from ai_filters.engine.retrieval_scores import (
    answer_row_argmax,
    greedy_answer,
    probe_scores,
    recording_argmax,
    rouge1_recall,
)
from tests.helpers.models import tiny_llama_model

ANSWER_TOKENS = 6


def uniform_attention_llama() -> LoadedModel:
    """A tiny Llama whose query projections are zero: every attention row is uniform, so every
    head's argmax is the first position of the row (the first of equal maxima)."""
    model = tiny_llama_model(seed=3)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.zero_()
    return LoadedModel("tiny", model, None, torch.device("cpu"), torch.float32)


def greedy_by_full_forwards(loaded: LoadedModel, prompt: list[int], steps: int) -> list[int]:
    """Reference greedy decoding: one full forward per token, no cache."""
    tokens = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            tokens.append(int(loaded.model(torch.tensor([tokens])).logits[0, -1].argmax()))
    return tokens[len(prompt) :]


def probe_with_a_wrong_gold_token(loaded: LoadedModel) -> tuple[Probe, list[int]]:
    """A probe whose gold answer is the model's greedy answer except its second token, which is
    the token at position 0 (inside the gold value's span [0, 6)); the greedy answer never
    holds that token. Returns the probe and the greedy answer."""
    generator = torch.Generator().manual_seed(0)
    context = torch.randint(3, 97, (40,), generator=generator).tolist()
    for first in range(3, 97):
        context[0] = first
        greedy = greedy_by_full_forwards(loaded, context, ANSWER_TOKENS)
        if first not in greedy:
            break
    gold = [greedy[0], context[0], *greedy[2:]]
    return Probe(tuple(context + gold), 0, ANSWER_TOKENS, len(context)), greedy


def test_greedy_answer_is_the_models_own_decoding():
    """After the first token that differs from the gold one, decoding goes on from the model's
    own token (key-value cache) exactly as full forwards do."""
    loaded = uniform_attention_llama()
    probe, greedy = probe_with_a_wrong_gold_token(loaded)
    with recording_argmax(loaded):
        _, logits = answer_row_argmax(loaded, probe)
        answer = greedy_answer(loaded, probe, logits.argmax(dim=-1).tolist())
    assert list(answer) == greedy
    assert list(answer) != list(probe.input_ids[probe.answer_start :])


def test_generated_scoring_counts_no_copy_of_a_token_the_model_did_not_produce():
    """Every head attends to position 0, which holds the second gold token but none of the
    model's own tokens: the gold scoring counts that copy (1 of 6 tokens), the generated one
    counts none; the probe is retrieved (5 of 6 gold tokens) and counts."""
    loaded = uniform_attention_llama()
    probe, _ = probe_with_a_wrong_gold_token(loaded)
    run = probe_scores(loaded, [probe], ("gold", "generated"))
    assert run.probes_counted == {"gold": 1, "generated": 1}
    assert torch.allclose(run.scores["gold"], torch.full((4, 8), 1 / ANSWER_TOKENS))
    assert torch.equal(run.scores["generated"], torch.zeros(4, 8))


def test_generated_scoring_counts_only_retrieved_probes():
    """A probe the model does not answer (ROUGE-1 recall of its answer <= 0.5) is left out;
    with none left, detection stops with one line."""
    loaded = uniform_attention_llama()
    probe, greedy = probe_with_a_wrong_gold_token(loaded)
    unanswered = Probe(
        probe.input_ids[: probe.answer_start] + (probe.input_ids[0],) * ANSWER_TOKENS,
        probe.value_start,
        probe.value_end,
        probe.answer_start,
    )
    assert rouge1_recall(greedy, unanswered.input_ids[unanswered.answer_start :]) == 0
    run = probe_scores(loaded, [probe, unanswered], ("gold", "generated"))
    assert run.probes_counted == {"gold": 2, "generated": 1}
    assert torch.allclose(run.scores["gold"], torch.full((4, 8), (1 / ANSWER_TOKENS + 1) / 2))
    with pytest.raises(ValueError, match="retrieved none of the 1 probes"):
        probe_scores(loaded, [unanswered], ("generated",))


def test_heads_file_records_the_scoring_and_old_files_read_as_gold(tmp_path):
    loaded = uniform_attention_llama()
    probe, _ = probe_with_a_wrong_gold_token(loaded)
    heads, _ = detect_heads(loaded, [probe], DetectionSettings(probe_scoring="generated"))
    assert heads.settings["probe_scoring"] == heads.probe_scoring == "generated"
    assert heads.settings["probes_counted"] == 1
    heads.save(tmp_path / "heads.json")
    assert RetrievalHeads.load(tmp_path / "heads.json").probe_scoring == "generated"
    heads.settings = {"num_probes": 1, "seed": 0}  # a file written before the setting existed
    heads.save(tmp_path / "old.json")
    assert RetrievalHeads.load(tmp_path / "old.json").probe_scoring == "gold"


def test_rouge1_recall_counts_tokens_as_a_multiset():
    assert rouge1_recall([5, 5, 7], [5, 7, 7, 9]) == 0.5
    assert rouge1_recall([], [1]) == 0.0
