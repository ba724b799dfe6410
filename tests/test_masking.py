"""Uniform masking by zeroed queries equals a literal 1/(i+1) attention, computed independently."""

from __future__ import annotations

import pytest
import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from ai_filters.masking import MaskingError, masked_heads
from ai_filters.numerics import loss_rtol

LITERAL = "test_literal_attention"
_state: dict = {}


def literal_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Eager attention written from scratch; masked heads get their probabilities replaced.

    Visibility comes from the test's own padding mask (``_state["padding"]``), not from the
    mask transformers builds: key j is visible to query i when j <= i and j is a real token.
    """
    groups = query.shape[1] // key.shape[1]
    keys = key.repeat_interleave(groups, dim=1)
    values = value.repeat_interleave(groups, dim=1)
    logits = (query @ keys.transpose(2, 3)) * scaling
    length = query.shape[2]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    visible = causal[None, None] & _state["padding"][:, None, None, :].bool()
    probs = logits.masked_fill(~visible, float("-inf")).softmax(dim=-1)
    for head in _state["heads"].get(module.layer_idx, []):
        if _state["mode"] == "uniform":
            uniform = visible[:, 0].float()
            probs[:, head] = uniform / uniform.sum(dim=-1, keepdim=True)
        else:
            probs[:, head] = 0.0
    return (probs @ values).transpose(1, 2).contiguous(), probs


AttentionInterface.register(LITERAL, literal_attention)
AttentionMaskInterface.register(LITERAL, sdpa_mask)


def sequence_losses(model, input_ids, padding) -> torch.Tensor:
    """Mean next-token cross-entropy of each row over its real tokens."""
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=padding).logits.float()
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), input_ids[:, 1:], reduction="none"
    )
    weights = padding[:, 1:].float()
    return (losses * weights).sum(dim=1) / weights.sum(dim=1)


def literal_losses(model, input_ids, padding, heads, mode) -> torch.Tensor:
    grouped: dict[int, list[int]] = {}
    for layer, head in heads:
        grouped.setdefault(layer, []).append(head)
    _state.update(padding=padding, heads=grouped, mode=mode)
    previous = model.config._attn_implementation
    model.set_attn_implementation(LITERAL)
    try:
        return sequence_losses(model, input_ids, padding)
    finally:
        model.set_attn_implementation(previous)


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
