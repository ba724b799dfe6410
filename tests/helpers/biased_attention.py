"""An attention kernel that adds an ALiBi position bias to the attention logits, registered
under :data:`BIASED` (a model whose attention a zero query does not make uniform)."""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

BIASED = "test_alibi_attention"


def biased_attention(module, query, key, value, attention_mask, scaling, **kwargs):
    """Causal eager attention (one document per row) with ``-slope_h * (i - j)`` added to the
    logit of query ``i`` and key ``j``, slopes ``2^-(h+1)`` as in ALiBi."""
    groups = query.shape[1] // key.shape[1]
    keys = key.repeat_interleave(groups, dim=1)
    values = value.repeat_interleave(groups, dim=1)
    length = query.shape[2]
    distance = (torch.arange(length)[:, None] - torch.arange(length)[None, :]).to(query.dtype)
    slopes = 2.0 ** -(torch.arange(query.shape[1], dtype=query.dtype) + 1)
    logits = (query @ keys.transpose(2, 3)) * scaling - slopes[:, None, None] * distance
    visible = torch.ones(length, length, dtype=torch.bool).tril()
    probs = logits.masked_fill(~visible, float("-inf")).softmax(dim=-1)
    return (probs @ values).transpose(1, 2).contiguous(), probs


AttentionInterface.register(BIASED, biased_attention)
AttentionMaskInterface.register(BIASED, sdpa_mask)
