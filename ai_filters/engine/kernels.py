"""Which attention kernel the engine runs the model's layers on: SDPA or flex_attention.

A packed row holds several documents, each with its own positions from 0; from those
``position_ids`` transformers builds a mask that lets a query see only the earlier tokens of
its own document (a block-diagonal causal mask). With SDPA that mask is a dense tensor, which
sends SDPA off its flash kernel to one that computes every masked-out score as well. torch's
``flex_attention`` takes the mask as a ``BlockMask`` instead, and skips the blocks of keys a
query cannot see: the other documents of the row.

``ScoringConfig.attention_kernel`` picks (:func:`resolve_attention_kernel`):

- ``"sdpa"``: the model's own kernel (SDPA; the model's eager attention where attention logits
  are soft-capped, see :func:`ai_filters.engine.architectures.attention_implementation`);
- ``"flex"``: :func:`document_flex_attention` over the block mask of
  :func:`document_block_mask`, both registered in transformers' interfaces under
  :data:`FLEX_IMPLEMENTATION`. On a GPU both run compiled; on a CPU torch runs flex_attention
  unfused (it materialises the scores, like eager attention): exact, not fast;
- ``"auto"``: flex on CUDA when rows are packed and the model can use it, ``"sdpa"`` otherwise.

The masking wrapper (:mod:`ai_filters.engine.masking`) wraps this kernel as it wraps SDPA: a masked
head's query row is zero, so every score it has is 0 (a soft-cap maps 0 to 0), and the block
mask restricts the softmax to its own document's prefix: uniform attention there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from ai_filters.engine.architectures import architecture_name

ATTENTION_KERNELS = ("auto", "sdpa", "flex")
FLEX_IMPLEMENTATION = "document_flex"  # the name both are registered under in transformers
FLEX_DEVICES = ("cuda", "cpu")

try:
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
except ImportError:  # torch < 2.5: no flex_attention
    BlockMask = create_block_mask = flex_attention = None


class AttentionKernelError(ValueError):
    """The attention kernel asked for cannot run this model here; the message says why."""


def flex_refusal(model: torch.nn.Module, device: torch.device) -> str | None:
    """Why ``model`` on ``device`` cannot run the flex kernel; ``None`` when it can."""
    if flex_attention is None:
        return f"torch {torch.__version__} has no flex_attention (it needs torch 2.5 or later)"
    if not getattr(model, "_supports_flex_attn", False):
        return (
            f"architecture {architecture_name(model)} has no flex_attention support in transformers"
        )
    if device.type not in FLEX_DEVICES:
        return f"flex_attention runs on {' and '.join(FLEX_DEVICES)} only, not '{device.type}'"
    return None


def resolve_attention_kernel(
    choice: str, model: torch.nn.Module, device: torch.device, packing: bool
) -> str:
    """The kernel that runs for ``choice`` (one of :data:`ATTENTION_KERNELS`): ``"sdpa"`` or
    ``"flex"``. ``"auto"`` is flex when rows are packed on CUDA and the model can use it;
    ``"flex"`` where it cannot run raises :class:`AttentionKernelError` in one line."""
    if choice not in ATTENTION_KERNELS:
        raise AttentionKernelError(
            f"attention kernel must be one of {', '.join(ATTENTION_KERNELS)}, not '{choice}'"
        )
    refusal = flex_refusal(model, device)
    if choice == "flex" and refusal is not None:
        raise AttentionKernelError(f"attention kernel 'flex' cannot run: {refusal}")
    if choice == "auto":
        return "flex" if packing and device.type == "cuda" and refusal is None else "sdpa"
    return choice


def kernel_implementation(kernel: str) -> str | None:
    """The attention implementation to run ``kernel`` (a resolved one) with: ``None`` for the
    model's own, :data:`FLEX_IMPLEMENTATION` (registered on first use) for flex."""
    if kernel == "sdpa":
        return None
    if kernel != "flex":
        raise AttentionKernelError(f"'{kernel}' is not a resolved attention kernel")
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(FLEX_IMPLEMENTATION, document_flex_attention)
    AttentionMaskInterface.register(FLEX_IMPLEMENTATION, document_block_mask)
    return FLEX_IMPLEMENTATION


def is_block_mask(value: object) -> bool:
    """Whether ``value`` is a flex_attention ``BlockMask``."""
    return BlockMask is not None and isinstance(value, BlockMask)


def first_block_rows(mask: BlockMask, rows: int) -> BlockMask:
    """The block mask of the first ``rows`` rows of ``mask``: torch's slice, given back the
    mask's own ``mask_mod`` (slicing resets it; the rows keep their indices, so it still
    describes them)."""
    sliced = mask[:rows]
    sliced.mask_mod = mask.mask_mod
    return sliced


@functools.cache
def _compiled(function: Callable) -> Callable:
    """``function`` compiled once for every batch shape: the engine's batches vary in rows and
    width, and a recompile per shape would reach dynamo's recompile limit, past which torch
    runs flex_attention unfused (the full score matrix) without a word."""
    return torch.compile(function, dynamic=True)


def _on_device(function: Callable, device: torch.device) -> Callable:
    """``function`` compiled on a GPU (its fused kernels), as it is on a CPU: there inductor's
    flex template took 43 s to compile a tiny model's first batch, and torch 2.13's failed to
    build its C++ for some dynamic shapes."""
    return _compiled(function) if device.type == "cuda" else function


def document_block_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: int = 0,
    kv_offset: int = 0,
    *,
    mask_function: Callable,
    attention_mask: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    **kwargs,
) -> BlockMask:
    """A transformers mask function: the ``BlockMask`` of ``mask_function(batch, head, q, kv)``
    (transformers composes it: causal, or sliding-window, and within one document when the
    ``position_ids`` are packed), one per row, shared by every head.

    The engine feeds no padding mask (causal attention hides the right padding): one that hides
    any position is refused rather than ignored.
    """
    if attention_mask is not None and not bool(attention_mask.all()):
        raise AttentionKernelError("the flex kernel takes no padding mask (the engine feeds none)")

    def visible(batch, head, query, key):
        return mask_function(batch, head, query + q_offset, key + kv_offset)

    device = torch.device(device)
    build = _on_device(create_block_mask, device)
    return build(visible, batch_size, None, q_length, kv_length, device=device)


def document_flex_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: BlockMask,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """A transformers attention function: flex_attention of ``query`` ``[batch, heads, seq,
    dim]`` over ``key``/``value`` (grouped-query heads shared) within ``attention_mask``, the
    block mask of :func:`document_block_mask`, logits soft-capped at ``softcap`` when given.
    Returns the output as ``[batch, seq, heads, dim]`` and no attention weights."""
    if not is_block_mask(attention_mask):
        raise AttentionKernelError(
            f"the flex kernel got {type(attention_mask).__name__} as its mask, not a BlockMask "
            f"({type(module).__name__} builds its mask outside transformers' mask interface)"
        )
    if dropout or kwargs.get("s_aux") is not None:
        raise AttentionKernelError("the flex kernel runs no attention dropout and no sinks")
    score_mod = None if softcap is None else _soft_cap(softcap)
    output = _on_device(flex_attention, query.device)(
        query.contiguous(),  # one memory layout, one compiled kernel: the masking wrapper's
        key.contiguous(),  # edited query is contiguous, the model's own query a transposed view
        value.contiguous(),
        score_mod=score_mod,
        block_mask=attention_mask,
        scale=scaling,
        enable_gqa=query.shape[1] != key.shape[1],
    )
    return output.transpose(1, 2).contiguous(), None


@functools.cache  # one function per cap: compiled flex_attention guards on it
def _soft_cap(cap: float) -> Callable:
    def capped(score, batch, head, query, key):
        return torch.tanh(score / cap) * cap

    return capped
