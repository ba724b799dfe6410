"""An independent reference for masked heads: eager attention written from scratch whose masked
heads get their attention probabilities replaced literally (uniform over the visible keys, or
zero), and losses taken from the model's own ``forward(labels=...)``.

It shares nothing with ai_filters.engine.masking: visibility comes from the test's own padding mask
(key j is visible to query i when j <= i, j is a real token, and j lies inside the sliding
window the layer passes), not from the mask transformers builds.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

LITERAL = "test_literal_attention"
_state: dict = {}


def literal_attention(
    module, query, key, value, attention_mask, scaling, dropout=0.0, softcap=None, **kwargs
):
    """Eager attention; the masked heads of ``_state`` get their probabilities replaced."""
    if kwargs.get("s_aux") is not None:
        raise NotImplementedError("attention sinks are not modelled here")
    groups = query.shape[1] // key.shape[1]
    keys = key.repeat_interleave(groups, dim=1)
    values = value.repeat_interleave(groups, dim=1)
    logits = (query @ keys.transpose(2, 3)) * scaling
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    length = query.shape[2]
    visible = torch.ones(length, length, dtype=torch.bool).tril()
    window = kwargs.get("sliding_window")
    if window is not None:
        distance = torch.arange(length)[:, None] - torch.arange(length)[None, :]
        visible &= distance < window
    visible = visible[None, None] & _state["padding"][:, None, None, :].bool()
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
    """Mean next-token cross-entropy of each row over its real tokens, from full logits."""
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=padding).logits.float()
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), input_ids[:, 1:], reduction="none"
    )
    weights = padding[:, 1:].float()
    return (losses * weights).sum(dim=1) / weights.sum(dim=1)


@torch.no_grad()
def labels_loss(model, ids: list[int]) -> float:
    """The model's own loss of one document: ``forward(labels=ids)`` (it shifts the labels)."""
    tensor = torch.tensor([ids])
    return model(input_ids=tensor, labels=tensor).loss.item()


def literal_mode(model, heads, mode: str, padding: torch.Tensor):
    """Context manager: ``model`` runs on :func:`literal_attention` with ``heads`` replaced."""
    from contextlib import contextmanager

    @contextmanager
    def running():
        grouped: dict[int, list[int]] = {}
        for layer, head in heads:
            grouped.setdefault(layer, []).append(head)
        _state.update(padding=padding, heads=grouped, mode=mode)
        previous = model.config._attn_implementation
        model.set_attn_implementation(LITERAL)
        try:
            yield
        finally:
            model.set_attn_implementation(previous)

    return running()


def literal_losses(model, input_ids, padding, heads, mode) -> torch.Tensor:
    """:func:`sequence_losses` with ``heads`` replaced literally."""
    with literal_mode(model, heads, mode, padding):
        return sequence_losses(model, input_ids, padding)


def literal_labels_loss(model, ids: list[int], heads, mode: str) -> float:
    """:func:`labels_loss` of one document with ``heads`` replaced literally."""
    with literal_mode(model, heads, mode, torch.ones(1, len(ids), dtype=torch.long)):
        return labels_loss(model, ids)
