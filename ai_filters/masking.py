"""Masking selected attention heads of a loaded model, in place and reversibly.

``uniform`` (the method's reference model): the head's attention weights become uniform over
the visible causal prefix, so the head outputs the mean of its value vectors. It is done by
zeroing the head's *projected query*: every attention logit of that head is then 0 and softmax
gives exactly 1/(i+1) over positions 0..i. This is exact for SDPA, eager and flash attention,
and for GQA, because only the query head is touched; the key and value heads, which GQA shares
between several query heads, stay intact. (RoPE and q-norms map a zero vector to zero.)

``zero`` (an ablation): the head's output is zeroed before the output projection.

Both are forward hooks on the attention block's ``q_proj`` / ``o_proj`` linear layers, the
layout of Llama, Mistral, Qwen2/3, SmolLM and most Hugging Face decoder models.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

MASK_MODES = ("uniform", "zero")


class MaskingError(ValueError):
    """The heads cannot be masked on this model."""


def attention_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The self-attention module of every decoder layer, in layer order."""
    layers = getattr(model.base_model, "layers", None)
    if layers is None or not all(hasattr(layer, "self_attn") for layer in layers):
        raise MaskingError(
            f"{type(model).__name__} has no base_model.layers[i].self_attn; only decoder models "
            "with Llama-style attention (q_proj/k_proj/v_proj/o_proj) are supported"
        )
    blocks = [layer.self_attn for layer in layers]
    for block in blocks:
        if not (hasattr(block, "q_proj") and hasattr(block, "o_proj")):
            raise MaskingError(f"{type(block).__name__} has no q_proj/o_proj linear layers")
    return blocks


def _heads_by_layer(
    heads: Sequence[Sequence[int]], num_layers: int, num_heads: int
) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for layer, head in heads:
        if not (0 <= layer < num_layers and 0 <= head < num_heads):
            raise MaskingError(
                f"head [{layer}, {head}] does not exist in a model of {num_layers} layers x "
                f"{num_heads} heads; was the heads file made for another model?"
            )
        grouped.setdefault(int(layer), []).append(int(head))
    return grouped


def _zeroing_hook(columns: torch.Tensor, on_input: bool, rows: slice | None):
    """A hook zeroing ``columns`` of a linear layer's input or output, in place.

    The tensor is the linear layer's fresh output, or the attention block's fresh output that
    feeds ``o_proj``, so writing into it touches nothing else. With ``rows``, only those batch
    rows are masked; the other rows pass unchanged.
    """
    selected = slice(None) if rows is None else rows

    def zero_columns(tensor: torch.Tensor) -> torch.Tensor:
        tensor[selected].index_fill_(-1, columns.to(tensor.device), 0)
        return tensor

    if on_input:
        return lambda module, args: (zero_columns(args[0]), *args[1:])
    return lambda module, args, output: zero_columns(output)


@contextmanager
def masked_heads(
    model: torch.nn.Module,
    heads: Sequence[Sequence[int]],
    mode: str = "uniform",
    rows: slice | None = None,
) -> Iterator[None]:
    """Within the block, ``model`` runs with ``heads`` (``[layer, query_head]`` pairs) masked.

    ``rows`` restricts the masking to those rows of every batch (the scoring engine runs the
    plain and the masked copies of a batch in one forward pass). The hooks are removed on exit,
    also when the block raises. An empty ``heads`` is a no-op.
    """
    if mode not in MASK_MODES:
        raise MaskingError(f"unknown mask mode '{mode}'; choose one of {', '.join(MASK_MODES)}")
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    blocks = attention_blocks(model) if heads else []
    grouped = _heads_by_layer(heads, len(blocks), config.num_attention_heads) if heads else {}
    handles = []
    try:
        for layer, layer_heads in grouped.items():
            columns = torch.cat(
                [torch.arange(head * head_dim, (head + 1) * head_dim) for head in layer_heads]
            )
            if mode == "uniform":
                hook = _zeroing_hook(columns, on_input=False, rows=rows)
                handles.append(blocks[layer].q_proj.register_forward_hook(hook))
            else:
                hook = _zeroing_hook(columns, on_input=True, rows=rows)
                handles.append(blocks[layer].o_proj.register_forward_pre_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
