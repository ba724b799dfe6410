"""Masking selected attention heads of a loaded model, inside its attention function.

transformers computes every layer's attention through a function looked up by name in its
``AttentionInterface``; it receives the layer's query ``[batch, heads, seq, dim]``, key and
value *after* the projections, every norm (OLMo2's RMSNorm over all query heads, Qwen3's per
head) and the rotary embeddings. While masking, the model runs on a wrapper registered there
that edits the masked heads and then calls the real kernel (SDPA, or the model's own eager
attention where attention logits are soft-capped):

``uniform`` (the method's reference model): the masked heads' query rows are set to zero. Every
attention logit of such a head is then 0 (a soft-cap maps 0 to 0), and softmax over the keys
the real kernel lets the query see (its causal prefix, its own document in a packed row) gives
each of them the same weight: the head outputs the mean of those value vectors. Only query
heads are touched; the key and value heads, which grouped-query attention shares between
several query heads, stay intact.

``zero`` (an ablation): the masked heads' attention outputs are set to zero before the output
projection.

``rows`` restricts masking to some rows of the batch: the engine feeds plain and masked copies
of a batch in one forward pass. Masking never edits the model's weights, and the wrapper checks
that it ran in every masked layer: a model whose attention does not go through the interface
is refused instead of silently scored unmasked.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

UNIFORM = "uniform"  # a masked head attends uniformly over its visible prefix (the method)
ZERO = "zero"  # a masked head outputs zeros (the zero-ablation control)
MASK_MODES = (UNIFORM, ZERO)
_PLAN = "_ai_filters_attention_plan"
_PREFIX = "ai_filters_"
Observer = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], None]
Inspector = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], None]


class MaskingError(ValueError):
    """The heads cannot be masked on this model."""


@dataclass
class AttentionPlan:
    """What the wrapper does in one attention layer.

    ``query_heads`` are zeroed in the query (uniform), ``output_heads`` in the output (zero),
    both in ``rows`` of the batch only; ``observer(module, query, key)`` sees the layer's query
    and key before the kernel runs (head detection); ``inspector(module, value, output)``
    sees the value states ``[batch, kv_heads, seq, dim]`` the kernel got and its output
    ``[batch, seq, heads, dim]`` (start-up checks). ``calls`` counts the wrapper's runs.
    """

    query_heads: list[int] = field(default_factory=list)
    output_heads: list[int] = field(default_factory=list)
    rows: slice = field(default_factory=lambda: slice(None))
    observer: Observer | None = None
    inspector: Inspector | None = None
    calls: int = 0

    def head_mask(self, heads: list[int], batch: int, num_heads: int, device) -> torch.Tensor:
        """``[batch, heads]`` booleans: True at ``heads`` in the masked rows."""
        selected = torch.zeros(batch, num_heads, dtype=torch.bool, device=device)
        selected[self.rows, heads] = True
        return selected


def attention_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The self-attention module of every decoder layer, in layer order."""
    layers = getattr(model.base_model, "layers", None)
    if layers is None or not all(hasattr(layer, "self_attn") for layer in layers):
        raise MaskingError(
            f"{type(model).__name__} has no base_model.layers[i].self_attn: its attention "
            "heads cannot be masked"
        )
    return [layer.self_attn for layer in layers]


def _kernel(name: str) -> Callable:
    """The attention function the wrapper of ``name`` calls after editing the heads."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if name != "eager":
        return ALL_ATTENTION_FUNCTIONS[name]

    def model_eager(module, *args, **kwargs):
        eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        if eager is None:
            raise MaskingError(f"{type(module).__name__} has no eager attention function")
        return eager(module, *args, **kwargs)

    return model_eager


def _wrapper(kernel: Callable) -> Callable:
    """An attention function that applies the layer's :class:`AttentionPlan`, then ``kernel``."""

    @torch.compiler.disable  # compiled layers break here: plans are Python state
    def wrapped_attention(module, query, key, value, attention_mask, *args, **kwargs):
        plan: AttentionPlan | None = getattr(module, _PLAN, None)
        if plan is None:
            return kernel(module, query, key, value, attention_mask, *args, **kwargs)
        plan.calls += 1
        batch, num_heads = query.shape[:2]
        if plan.observer is not None:
            plan.observer(module, query, key)
        if plan.query_heads:
            masked = plan.head_mask(plan.query_heads, batch, num_heads, query.device)
            query = query.masked_fill(masked[:, :, None, None], 0)
        output, weights = kernel(module, query, key, value, attention_mask, *args, **kwargs)
        if plan.inspector is not None:
            plan.inspector(module, value, output)
        if plan.output_heads:  # the kernels return [batch, seq, heads, dim]
            masked = plan.head_mask(plan.output_heads, batch, num_heads, output.device)
            output = output.masked_fill(masked[:, None, :, None], 0)
        return output, weights

    return wrapped_attention


def wrapped_name(implementation: str) -> str:
    """Register (once) the wrapper around ``implementation`` and return its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    if implementation.startswith(_PREFIX):
        return implementation
    name = _PREFIX + implementation
    if name not in ALL_MASK_ATTENTION_FUNCTIONS:
        if implementation not in ALL_MASK_ATTENTION_FUNCTIONS:
            raise MaskingError(f"attention implementation '{implementation}' cannot be wrapped")
        AttentionInterface.register(name, _wrapper(_kernel(implementation)))
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[implementation])
    return name


@contextmanager
def wrapped_attention(model: torch.nn.Module, implementation: str | None = None) -> Iterator[None]:
    """Within the block, ``model``'s attention runs through the wrapper (a no-op in every layer
    without a plan) around ``implementation`` (default: the model's own). Nested blocks share
    the wrapper."""
    previous = model.config._attn_implementation
    name = wrapped_name(implementation or previous or "eager")
    if name == previous:
        yield
        return
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


@contextmanager
def attention_plans(
    model: torch.nn.Module, plans: dict[int, AttentionPlan]
) -> Iterator[dict[int, AttentionPlan]]:
    """Within the block, layer ``i``'s attention applies ``plans[i]``; the plans are removed on
    exit, also when the block raises."""
    blocks = attention_blocks(model) if plans else []
    try:
        with wrapped_attention(model):
            for layer, plan in plans.items():
                setattr(blocks[layer], _PLAN, plan)
            yield plans
    finally:
        for layer in plans:
            if hasattr(blocks[layer], _PLAN):
                delattr(blocks[layer], _PLAN)


def head_plans(
    heads: Sequence[Sequence[int]],
    num_layers: int,
    num_heads: int,
    mode: str = UNIFORM,
    rows: slice | None = None,
) -> dict[int, AttentionPlan]:
    """One plan per layer with masked heads (``[layer, query_head]`` pairs)."""
    if mode not in MASK_MODES:
        raise MaskingError(f"unknown mask mode '{mode}'; choose one of {', '.join(MASK_MODES)}")
    plans: dict[int, AttentionPlan] = {}
    for layer, head in heads:
        if not (0 <= layer < num_layers and 0 <= head < num_heads):
            raise MaskingError(
                f"head [{layer}, {head}] does not exist in a model of {num_layers} layers x "
                f"{num_heads} heads; was the heads file made for another model?"
            )
        plan = plans.setdefault(int(layer), AttentionPlan(rows=rows or slice(None)))
        (plan.query_heads if mode == UNIFORM else plan.output_heads).append(int(head))
    return plans


def check_plans_ran(model: torch.nn.Module, plans: dict[int, AttentionPlan]) -> None:
    """Raise :class:`MaskingError` when a masked layer's attention never reached the wrapper
    (the model computes attention outside transformers' attention interface)."""
    missed = sorted(layer for layer, plan in plans.items() if plan.calls == 0)
    if missed:
        raise MaskingError(
            f"{type(model).__name__} computed layer {missed[0]}'s attention without "
            "transformers' attention interface: its heads cannot be masked"
        )


@contextmanager
def masked_heads(
    model: torch.nn.Module,
    heads: Sequence[Sequence[int]],
    mode: str = UNIFORM,
    rows: slice | None = None,
) -> Iterator[dict[int, AttentionPlan]]:
    """Within the block, ``model`` runs with ``heads`` (``[layer, query_head]`` pairs) masked.

    ``rows`` restricts the masking to those rows of every batch. An empty ``heads`` is a no-op.
    Yields the per-layer plans; :func:`check_plans_ran` on them after a forward pass confirms
    that every masked layer was masked.
    """
    config = model.config
    num_layers = len(attention_blocks(model)) if heads else config.num_hidden_layers
    plans = head_plans(heads, num_layers, config.num_attention_heads, mode, rows)
    with attention_plans(model, plans):
        yield plans
