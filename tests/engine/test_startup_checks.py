"""The engine's start-up checks of a model's attention (ai_filters/engine/startup_checks.py): a zero
query must be uniform attention over the visible prefix wherever heads are masked uniformly,
and packed documents must see only themselves; each refusal is one line."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers

from ai_filters.engine.architectures import UnsupportedArchitectureError, check_output_logits
from ai_filters.engine.scoring import ScoringConfig, ScoringEngine
from ai_filters.engine.startup_checks import PackingError, check_attention, first_nonuniform
from tests.helpers.biased_attention import BIASED
from tests.helpers.tiny_families import COMMON, FAMILIES, loaded, tiny_model

HEADS = [(1, 0), (1, 3), (2, 2)]


pytestmark = pytest.mark.usefixtures("one_thread")


def engine(model: torch.nn.Module, heads=HEADS, **config) -> ScoringEngine:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning of an accepted unsupported architecture
        return ScoringEngine(loaded(model), heads, ScoringConfig(max_tokens=48, **config))


def tiny_gpt_oss() -> torch.nn.Module:
    """gpt-oss (not listed): every head adds a learned sink logit to its softmax."""
    config = transformers.GptOssConfig(
        **{**COMMON, "head_dim": 16}, num_local_experts=4, num_experts_per_tok=2
    )
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_passes_the_start_up_checks_in_bf16(family):
    """No false alarm at the tolerances of bf16 (fp32: every engine of test_architectures.py)."""
    model = tiny_model(family).to(torch.bfloat16)
    check_output_logits(model)
    check_attention(model, uniform_masking=True, packing=True, sequence_length=48)


def test_attention_sinks_are_refused_whatever_the_option_says():
    model = tiny_gpt_oss()
    assert first_nonuniform(model, [6]) == (0, 0)  # a masked head's output is not the mean
    for allow in (False, True):
        with pytest.raises(UnsupportedArchitectureError) as refused:
            engine(model, allow_unsupported_architecture=True, packing=allow)
        message = str(refused.value)
        assert "\n" not in message
        assert "zero query is not uniform attention in layer 0 of architecture 'gpt_oss'" in message
    # without uniform masking or packing nothing rests on it: the zero ablation, perplexity
    engine(model, mask_mode="zero", packing=False, allow_unsupported_architecture=True)
    engine(model, heads=[], packing=False, allow_unsupported_architecture=True)
    with pytest.raises(PackingError, match="packing cannot be checked on it"):
        engine(model, heads=[], packing=True, allow_unsupported_architecture=True)


def test_position_biases_are_refused_on_a_listed_family():
    """A Llama (listed) whose attention kernel adds ALiBi biases: refused with or without the
    option, although its architecture is on the supported list."""
    model = tiny_model("llama")
    model.set_attn_implementation(BIASED)
    for allow in (False, True):
        with pytest.raises(UnsupportedArchitectureError, match="zero query is not uniform"):
            engine(model, packing=False, allow_unsupported_architecture=allow)
    engine(model, mask_mode="zero", packing=False)


def test_packing_without_per_document_masks_is_refused(monkeypatch):
    """An install whose transformers does not find the documents of a packed row (as some older
    torch and transformers combinations) gives a plain causal mask: packing is refused."""
    model = tiny_model("llama")
    engine(model, packing=True)  # this install: per-document masks
    monkeypatch.setattr(
        transformers.masking_utils, "find_packed_sequence_indices", lambda position_ids: None
    )
    assert first_nonuniform(model, [6, 6]) == (0, 1)  # the second document sees the first
    for heads in (HEADS, []):
        with pytest.raises(PackingError) as refused:
            engine(model, heads=heads, packing=True)
        message = str(refused.value)
        assert "\n" not in message
        assert "packed documents attend to the documents before them in layer 0" in message
        assert f"torch {torch.__version__} and transformers {transformers.__version__}" in message
    engine(model, packing=False)  # unpacked rows do not depend on it
