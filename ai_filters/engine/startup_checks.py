"""What the engine assumes about a model's attention, checked on one short row at start-up.

Uniform masking zeroes a head's query: every attention logit of the head is then 0, softmax
gives each key the query may see the same weight, and the head outputs the mean of its value
vectors over its visible prefix. That holds only when the attention adds nothing to a zero
logit: attention sinks (an extra logit per head, as in gpt-oss), ALiBi or other position biases
break it, and such a model is refused whatever ``--allow-unsupported-architecture`` says.

Packing relies on transformers restricting each document of a packed row to its own tokens (a
block-diagonal causal mask built from the position ids), which some older torch and
transformers combinations do not do: packed documents would then attend to the documents
before them and score differently than alone.

Both follow from one forward pass of a row of two short documents (one when not packing) with
every query head of every layer zeroed: in each layer, at each position, the attention output
must be the mean of that layer's own value vectors over the position's prefix in its own
document, within :func:`~ai_filters.engine.numerics.uniform_mean_rtol`. Each layer is compared with
its own inputs, so the tolerance does not grow with depth, and a document that sees another
one is off by far more: its first token's output is its own value vector when alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import transformers

from ai_filters.engine.architectures import (
    UnsupportedArchitectureError,
    architecture_name,
    check_output_logits,
    check_supported,
    sliding_window,
)
from ai_filters.engine.masking import (
    UNIFORM,
    AttentionPlan,
    attention_blocks,
    attention_plans,
    check_plans_ran,
)
from ai_filters.engine.numerics import uniform_mean_rtol

if TYPE_CHECKING:
    from ai_filters.engine.scoring import ScoringConfig

DOCUMENT_TOKENS = 6  # tokens of each document of the check row (fewer under a short window)


class PackingError(ValueError):
    """Packed documents would attend to each other on this install."""


def check_engine_model(
    model: torch.nn.Module, heads: Sequence[Sequence[int]], config: ScoringConfig
) -> None:
    """Every start-up check of the scoring engine for ``model`` masking ``heads`` as
    ``config`` says (its ``packing`` decided): the architecture and the lengths asked for
    (:func:`~ai_filters.engine.architectures.check_supported`, rows of up to ``pack_tokens`` when
    packing), the logits (:func:`~ai_filters.engine.architectures.check_output_logits`), then
    :func:`check_attention`. Each refuses in one line."""
    allow = config.allow_unsupported_architecture
    longest_row = (config.pack_tokens or config.max_tokens) if config.packing else None
    check_supported(model, config.max_tokens, allow, positions=longest_row)
    check_output_logits(model, allow)
    uniform = bool(heads) and config.mask_mode == UNIFORM
    check_attention(model, uniform, bool(config.packing), config.max_tokens)


def check_attention(
    model: torch.nn.Module, uniform_masking: bool, packing: bool, sequence_length: int
) -> None:
    """Refuse, in one line, a model on which uniform masking (``uniform_masking``) or packing
    (``packing``) would not be what the engine assumes; a no-op when neither is used.

    ``sequence_length`` is the longest document the engine feeds; the check's documents are no
    longer, nor longer than a sliding window.
    """
    if not (uniform_masking or packing):
        return
    length = min(DOCUMENT_TOKENS, sequence_length, sliding_window(model.config) or sequence_length)
    lengths = [length, length] if packing else [length]
    layer, document = first_nonuniform(model, lengths)
    if layer is None:
        return
    name = architecture_name(model)
    if document == 0:
        why = (
            f"a zero query is not uniform attention in layer {layer} of architecture {name} "
            "(attention sinks, or position biases added to the attention logits)"
        )
        if uniform_masking:
            raise UnsupportedArchitectureError(
                f"{why}: a masked head would not output the mean of its values over its "
                "prefix, so the method cannot be applied to this model"
            )
        raise PackingError(f"{why}: packing cannot be checked on it; score it without --packing")
    raise PackingError(
        f"packed documents attend to the documents before them in layer {layer} of "
        f"architecture {name} with torch {torch.__version__} and transformers "
        f"{transformers.__version__}, which do not give packed rows per-document masks; "
        "install the versions pyproject.toml asks for, or score without --packing"
    )


def first_nonuniform(model: torch.nn.Module, lengths: list[int]) -> tuple[int | None, int | None]:
    """Feed one row of documents of ``lengths`` tokens (each with its own positions from 0)
    with every query head zeroed; return the first layer whose output is not the mean of its
    values over each position's own document prefix, and the index of that document, or
    ``(None, None)`` when every layer's is."""
    config = model.config
    device = next(model.parameters()).device
    vocab = config.vocab_size
    # distinct tokens in each document: a document that sees another one averages other values
    ids = torch.cat(
        [(torch.arange(n) * (i + 2) + 5 * i + 3) % vocab for i, n in enumerate(lengths)]
    )
    positions = torch.cat([torch.arange(n) for n in lengths])
    document = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    seen: dict[int, tuple[torch.Tensor, torch.Tensor, torch.dtype]] = {}

    def record(layer: int):
        def inspector(module, value, output):
            seen[layer] = (value[0].float(), output[0].float(), output.dtype)

        return inspector

    heads = list(range(config.num_attention_heads))
    plans = {
        layer: AttentionPlan(query_heads=heads, inspector=record(layer))
        for layer in range(len(attention_blocks(model)))
    }
    with torch.inference_mode(), attention_plans(model, plans):
        model.base_model(
            input_ids=ids.unsqueeze(0).to(device),
            position_ids=positions.unsqueeze(0).to(device) if len(lengths) > 1 else None,
            use_cache=False,
        )
        check_plans_ran(model, plans)
    for layer in sorted(seen):
        value, output, dtype = seen[layer]  # [kv_heads, seq, dim], [seq, heads, dim]
        rtol = uniform_mean_rtol(max(lengths), dtype)
        value = value.repeat_interleave(output.shape[1] // value.shape[0], dim=0).cpu()
        mean, magnitude = prefix_means(value, positions)
        error = (output.transpose(0, 1).cpu() - mean).abs() > rtol * magnitude
        if bool(error.any()):
            failing = error.any(dim=2).any(dim=0)  # per position
            return layer, int(document[failing.nonzero()[0, 0]])
    return None, None


def prefix_means(value: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per head and position of ``value`` ``[heads, seq, dim]``, the mean of the value vectors
    of its document (the run of ``positions`` counting up from 0 that holds it) up to it, and
    the mean of their magnitudes, in float64."""
    before = torch.arange(value.shape[1]) - positions - 1  # the position before its document
    counts = (positions + 1).double()[None, :, None]
    outside = (before >= 0)[None, :, None]
    results = []
    for values in (value.double(), value.double().abs()):
        sums = values.cumsum(dim=1)
        earlier = torch.where(outside, sums[:, before.clamp(min=0)], 0.0)
        results.append((sums - earlier) / counts)
    return results[0], results[1]
