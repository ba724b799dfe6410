"""Masking inside the attention function equals a literal replacement of the attention
probabilities (uniform 1/(i+1), or zero), computed independently."""

from __future__ import annotations

import pytest
import torch

from ai_filters.engine.masking import MaskingError, check_plans_ran, masked_heads
from ai_filters.engine.numerics import loss_rtol
from tests.helpers.literal_attention import literal_losses, sequence_losses


def padded_batch(lengths: list[int], vocab: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab, (len(lengths), max(lengths)), generator=generator)
    padding = torch.zeros_like(input_ids)
    for row, length in enumerate(lengths):
        padding[row, :length] = 1
    return input_ids, padding


@pytest.mark.parametrize("mode", ["uniform", "zero"])
def test_tiny_gqa_llama_matches_literal_attention(tiny_llama, mode):
    # heads 1 and 2 share KV head 0 with heads 0 and 3, which stay unmasked
    heads = [(0, 1), (0, 2), (2, 5), (3, 7)]
    input_ids, padding = padded_batch([40, 17, 3], tiny_llama.config.vocab_size)
    with masked_heads(tiny_llama, heads, mode):
        hooked = sequence_losses(tiny_llama, input_ids, padding)
    literal = literal_losses(tiny_llama, input_ids, padding, heads, mode)
    plain = sequence_losses(tiny_llama, input_ids, padding)
    # SDPA against eager attention: the same arithmetic summed in another order
    rtol = loss_rtol(tiny_llama.config, input_ids.shape[1])
    torch.testing.assert_close(hooked, literal, rtol=rtol, atol=0)
    assert (hooked - plain).abs().max() > 1e-3, "masking these heads should change the loss"


def test_embedded_model_matches_literal_uniform_attention(embedded):
    texts = [
        "The quick brown fox jumps over the lazy dog because it wants to reach the river "
        "before the sun sets behind the distant hills of the valley.",
        "def add(a, b):\n    return a + b\n",
    ]
    encoded = [embedded.tokenizer(text).input_ids for text in texts]
    input_ids, padding = padded_batch([len(ids) for ids in encoded], 10)
    for row, ids in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
    heads = [(17, 3), (17, 4), (18, 6), (20, 6), (23, 2), (2, 0)]
    with masked_heads(embedded.model, heads, "uniform"):
        hooked = sequence_losses(embedded.model, input_ids, padding)
    literal = literal_losses(embedded.model, input_ids, padding, heads, "uniform")
    plain = sequence_losses(embedded.model, input_ids, padding)
    # SDPA against eager attention: the same arithmetic summed in another order
    rtol = loss_rtol(embedded.config, input_ids.shape[1])
    torch.testing.assert_close(hooked, literal, rtol=rtol, atol=0)
    assert (hooked - plain).abs().max() > 1e-3


def test_hooks_are_removed_after_the_block(tiny_llama):
    input_ids, padding = padded_batch([20], tiny_llama.config.vocab_size)
    before = sequence_losses(tiny_llama, input_ids, padding)
    with pytest.raises(RuntimeError), masked_heads(tiny_llama, [(1, 1)], "uniform"):
        raise RuntimeError("boom")
    with masked_heads(tiny_llama, [(1, 1)], "zero"):
        pass
    assert torch.equal(sequence_losses(tiny_llama, input_ids, padding), before)


def test_heads_outside_the_model_are_a_clear_error(tiny_llama):
    with pytest.raises(MaskingError, match="does not exist in a model of 4 layers x 8 heads"):
        with masked_heads(tiny_llama, [(4, 0)]):
            pass
    with pytest.raises(MaskingError, match="unknown mask mode"):
        with masked_heads(tiny_llama, [(0, 0)], "mean"):
            pass


def test_rows_restrict_masking_to_those_rows(tiny_llama):
    heads = [(1, 3), (2, 0)]
    input_ids, padding = padded_batch([30, 30], tiny_llama.config.vocab_size)
    input_ids[1] = input_ids[0]
    with masked_heads(tiny_llama, heads, "uniform", rows=slice(1, None)):
        both = sequence_losses(tiny_llama, input_ids, padding)
    plain = sequence_losses(tiny_llama, input_ids[:1], padding[:1])
    masked = literal_losses(tiny_llama, input_ids[:1], padding[:1], heads, "uniform")
    # SDPA against SDPA and against eager: rounding only
    rtol = loss_rtol(tiny_llama.config, input_ids.shape[1])
    torch.testing.assert_close(both, torch.cat([plain, masked]), rtol=rtol, atol=0)


def test_a_masked_layer_that_never_ran_is_an_error(tiny_llama):
    """If a layer's attention bypassed the wrapper, its heads would silently stay unmasked."""
    input_ids, padding = padded_batch([12], tiny_llama.config.vocab_size)
    with masked_heads(tiny_llama, [(0, 1), (3, 2)]) as plans:
        tiny_llama.config.num_hidden_layers = 3  # the forward stops before layer 3
        try:
            sequence_losses(tiny_llama, input_ids, padding)
        finally:
            tiny_llama.config.num_hidden_layers = 4
        with pytest.raises(MaskingError, match="layer 3's attention without"):
            check_plans_ran(tiny_llama, plans)
