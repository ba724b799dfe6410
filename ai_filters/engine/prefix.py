"""The shared prefix: the layers below the first masked head run once for both copies.

The engine feeds each batch twice in one forward pass, plain rows then the same rows with the
retrieval heads masked (:mod:`ai_filters.engine.masking`). Below the first layer that holds a
masked head both copies compute the same hidden states, so :func:`shared_prefix` runs those
layers on the plain rows only and hands their output to both copies.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from ai_filters.engine.kernels import first_block_rows, is_block_mask
from ai_filters.engine.masking import MaskingError


def shared_prefix_layers(heads: Sequence[Sequence[int]]) -> int:
    """How many bottom layers the plain and the masked model share: those below every head."""
    return min(int(layer) for layer, _ in heads)


# Decoder-layer arguments that hold one entry per batch row (or one broadcast over all rows),
# and those that hold none. Any other tensor argument is refused: the shared prefix cannot
# tell whether it carries rows.
ROW_ARGUMENTS = frozenset(
    {"hidden_states", "attention_mask", "position_ids", "position_embeddings"}
)
ROWLESS_ARGUMENTS = frozenset(
    {"cache", "past_key_values", "past_key_value", "use_cache", "cache_position"}
)


def _first_rows(name: str, value, rows: int):
    """The first ``rows`` batch rows of decoder-layer argument ``name`` of a doubled batch."""
    if value is None or name in ROWLESS_ARGUMENTS:
        return value
    if isinstance(value, tuple):
        return tuple(_first_rows(name, item, rows) for item in value)
    if not isinstance(value, torch.Tensor) and not is_block_mask(value):
        return value
    if name not in ROW_ARGUMENTS:
        raise MaskingError(
            f"decoder layers receive a tensor argument '{name}' the shared prefix does not know"
        )
    if value.shape and value.shape[0] == 2 * rows:  # a tensor, or flex_attention's BlockMask
        return first_block_rows(value, rows) if is_block_mask(value) else value[:rows]
    if value.shape and value.shape[0] in (1, rows):
        return value  # broadcast over every row, or the layer below's output: already cut
    raise MaskingError(
        f"decoder-layer argument '{name}' has {value.shape[0]} rows, not 1, {rows} or {2 * rows}"
    )


@contextmanager
def shared_prefix(model: torch.nn.Module, layers: int, rows: int) -> Iterator[None]:
    """Run the bottom ``layers`` decoder layers on the first ``rows`` rows of a doubled batch.

    The model is fed ``2 * rows`` rows whose halves are the same tokens. Below the first
    masked layer both halves would compute the same hidden states, so each of those layers
    gets only the first half of every argument that carries rows (:data:`ROW_ARGUMENTS`,
    matched by name through the layer's signature), and the last of them hands a copy of its
    output to both halves.
    """
    blocks = model.base_model.layers[:layers]
    handles = []

    def take_first_half(module, args, kwargs):
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
        for name, value in list(bound.arguments.items()):
            if isinstance(value, dict) and name not in ROW_ARGUMENTS:  # the **kwargs bucket
                bound.arguments[name] = {k: _first_rows(k, v, rows) for k, v in value.items()}
            else:
                bound.arguments[name] = _first_rows(name, value, rows)
        return bound.args, bound.kwargs

    def copy_to_both_halves(module, args, kwargs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        doubled = torch.cat([hidden, hidden])
        return (doubled, *output[1:]) if isinstance(output, tuple) else doubled

    try:
        for block in blocks:
            handles.append(block.register_forward_pre_hook(take_first_half, with_kwargs=True))
        if blocks:
            handles.append(blocks[-1].register_forward_hook(copy_to_both_halves, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()
