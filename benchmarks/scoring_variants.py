"""The scoring variants that ``bench_scoring.py`` times (and ``gpu_check.py`` runs through it):
the naive baseline, the engine one document per row, packed, packed with SDPA, compiled; their
useful FLOPs, the matmul peak they are measured against, and how two variants' results compare.

A shared benchmark module (see ``common.py``): imported, never run.

- ``naive``: two model copies, the second with the masked heads' query rows zeroed (exactly
  uniform attention on Llama-shaped models), two Hugging Face forward passes with
  ``labels=input_ids`` per document at batch size 1;
- ``engine``: ``ScoringEngine.score_token_ids``, one document per row;
- ``packed``: several documents per row (the engine's kernel choice: flex attention on CUDA);
- ``packed_sdpa``: packed, with SDPA and a block-diagonal mask;
- ``compiled``: packed, the decoder layers compiled.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from common import timed

from ai_filters.engine.models import LoadedModel
from ai_filters.engine.numerics import score_tolerance
from ai_filters.engine.prefix import shared_prefix_layers
from ai_filters.engine.scoring import ScoringConfig, ScoringEngine

VARIANTS = ("naive", "engine", "packed", "packed_sdpa", "compiled")
ENGINE_VARIANTS = VARIANTS[1:]
PEAK_SECONDS = 2.0


@dataclass(frozen=True)
class EngineOptions:
    """What the engine variants are given: the longest document, rows and padded tokens per
    batch (``None``: the engine's choice), tokens per packed row (``None``: the longest)."""

    max_tokens: int
    batch_size: int
    batch_tokens: int | None
    pack_tokens: int | None


# ------------------------------------------------------------------------------- the peak
def matmul_peak(device: torch.device, dtype: torch.dtype) -> dict:
    """Achieved FLOP/s of square matmuls repeated for about ``PEAK_SECONDS`` seconds."""
    size = 2048 if device.type == "cpu" else 8192
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty_like(a)

    def multiply(repeats: int) -> None:
        for _ in range(repeats):
            torch.matmul(a, b, out=out)

    multiply(1)
    _, twice = timed(lambda: multiply(2), device)
    repeats = max(1, math.ceil(PEAK_SECONDS / (twice / 2)))
    _, seconds = timed(lambda: multiply(repeats), device)
    return {
        "size": size,
        "dtype": str(dtype).removeprefix("torch."),
        "repeats": repeats,
        "seconds": seconds,
        "flops_per_s": 2 * size**3 * repeats / seconds,
    }


# -------------------------------------------------------------------------- naive, FLOPs
def reference_copy(loaded: LoadedModel, heads: Sequence[tuple[int, int]]) -> torch.nn.Module:
    """A deep copy of the model whose masked heads have zero ``q_proj`` output rows (exactly
    uniform attention for Llama-shaped models, which have no norm after ``q_proj``)."""
    reference = copy.deepcopy(loaded.model)
    rows = loaded.head_dim
    with torch.no_grad():
        for layer, head in heads:
            q_proj = reference.model.layers[layer].self_attn.q_proj
            q_proj.weight[head * rows : (head + 1) * rows] = 0
            if q_proj.bias is not None:
                q_proj.bias[head * rows : (head + 1) * rows] = 0
    return reference


def layer_linear_flops(layer: torch.nn.Module) -> int:
    """FLOPs per token of a decoder layer's linear maps: 2 per weight (one multiply-add)."""
    return sum(
        2 * module.weight.numel()
        for module in layer.modules()
        if isinstance(module, torch.nn.Linear)
    )


def attention_flops(layer: torch.nn.Module, tokens: int) -> int:
    """FLOPs of causal QK^T and AV over one document: position i sees i + 1 keys."""
    query_width = layer.self_attn.q_proj.out_features
    return 2 * 2 * query_width * tokens * (tokens + 1) // 2


def scoring_flops(loaded: LoadedModel, lengths: Sequence[int], shared_layers: int) -> int:
    """Useful FLOPs of scoring documents of ``lengths``: the bottom ``shared_layers`` layers
    once, the others and the output layer twice (padding and packing overheads not counted)."""
    total = 0
    head = loaded.model.get_output_embeddings().weight.numel()
    for tokens in lengths:
        for index, layer in enumerate(loaded.model.model.layers):
            passes = 1 if index < shared_layers else 2
            total += passes * (layer_linear_flops(layer) * tokens + attention_flops(layer, tokens))
        total += 2 * 2 * head * tokens
    return total


def naive_losses(
    base: torch.nn.Module, reference: torch.nn.Module, documents: Sequence[list[int]], device
) -> list[tuple[float, float]]:
    """``(loss_base, loss_ref)`` per document, one document and two forward passes at a time."""
    losses = []
    with torch.inference_mode():
        for ids in documents:
            input_ids = torch.tensor([ids], device=device)
            loss_base = base(input_ids=input_ids, labels=input_ids).loss.item()
            loss_ref = reference(input_ids=input_ids, labels=input_ids).loss.item()
            losses.append((loss_base, loss_ref))
    return losses


# ------------------------------------------------------------------------------ variants
def run_naive(
    loaded: LoadedModel, heads: list[tuple[int, int]], documents: list[list[int]]
) -> dict:
    """The naive baseline: warm up on one document, then time all of them. Every row holds one
    whole document, so no position fed is padding."""
    reference = reference_copy(loaded, heads)

    def score(docs: list[list[int]]) -> list[tuple[float, float]]:
        return naive_losses(loaded.model, reference, docs, loaded.device)

    _, warmup = timed(lambda: score(documents[:1]), loaded.device)
    losses, elapsed = timed(lambda: score(documents), loaded.device)
    lengths = [len(ids) for ids in documents]
    return {
        "losses": losses,
        "warmup_s": warmup,
        "elapsed_s": elapsed,
        "flops": scoring_flops(loaded, lengths, shared_layers=0),
        "fed_tokens": sum(lengths),
        "real_tokens": sum(lengths),
    }


def engine_config(options: EngineOptions, variant: str) -> ScoringConfig:
    """The engine's configuration for the engine variant ``variant``."""
    return ScoringConfig(
        max_tokens=options.max_tokens,
        batch_size=options.batch_size,
        batch_tokens=options.batch_tokens,
        packing=variant != "engine",
        pack_tokens=options.pack_tokens,
        compile=variant == "compiled",
        attention_kernel="sdpa" if variant == "packed_sdpa" else "auto",
    )


def run_engine(
    loaded: LoadedModel,
    heads: list[tuple[int, int]],
    documents: list[list[int]],
    config: ScoringConfig,
) -> dict:
    """An engine variant: warm up on a few documents (compiling, for ``compiled``), then time
    all documents."""
    engine = ScoringEngine(loaded, heads, config)
    warm = documents[: max(1, min(8, len(documents) // 4))]
    _, warmup = timed(lambda: engine.score_token_ids(warm), loaded.device)
    engine.feed.real = engine.feed.fed = 0
    scores, elapsed = timed(lambda: engine.score_token_ids(documents), loaded.device)
    skipped = [score.skip_reason for score in scores if score.skip_reason is not None]
    if skipped:
        raise RuntimeError(f"the engine skipped {len(skipped)} documents: {skipped[:3]}")
    shared = shared_prefix_layers(heads)
    return {
        "losses": [(score.loss_base, score.loss_ref) for score in scores],
        "warmup_s": warmup,
        "elapsed_s": elapsed,
        "flops": scoring_flops(loaded, [len(ids) for ids in documents], shared),
        "shared_layers": shared,
        "batch_tokens": engine.config.batch_tokens,
        "packing": engine.config.packing,
        "compile": engine.config.compile,
        "attention_kernel": engine.config.attention_kernel,
        "fed_tokens": engine.feed.fed,
        "real_tokens": engine.feed.real,
    }


def run_scoring_variant(
    variant: str,
    loaded: LoadedModel,
    heads: list[tuple[int, int]],
    documents: list[list[int]],
    options: EngineOptions,
) -> dict:
    """``variant``'s timed run on ``documents``."""
    if variant == "naive":
        return run_naive(loaded, heads, documents)
    return run_engine(loaded, heads, documents, engine_config(options, variant))


# ----------------------------------------------------------------------------- the results
def variant_summary(result: dict, scored_tokens: int, peak: float) -> dict:
    """A variant's speed, padding, FLOP utilisation, memory and per-document numbers."""
    losses = result.pop("losses")
    flops_per_s = result["flops"] / result["elapsed_s"]
    fed, real = result["fed_tokens"], result["real_tokens"]
    return {
        **result,
        "tokens_per_s": scored_tokens / result["elapsed_s"],
        "padding_share": (fed - real) / fed,
        "flops_per_s": flops_per_s,
        "mfu": flops_per_s / peak,
        "loss_base": [base for base, _ in losses],
        "loss_ref": [ref for _, ref in losses],
        "scores": [(ref - base) / base for base, ref in losses],
    }


def comparison(baseline: dict, other: dict, rtol: float, dtype: torch.dtype) -> dict:
    """``other``'s speed-up over ``baseline``, the largest absolute differences of their
    numbers, and whether every score agrees within the tolerance of
    :mod:`ai_filters.engine.numerics` for ``dtype``
    (:func:`~ai_filters.engine.numerics.score_tolerance`: from ``rtol`` per loss in fp32, the
    bound measured on the CPU in bf16)."""

    def largest(key: str) -> float:
        return max(abs(a - b) for a, b in zip(baseline[key], other[key], strict=True))

    pairs = zip(baseline["scores"], other["scores"], strict=True)
    score_ratios = [abs(a - b) / score_tolerance(a, rtol, dtype) for a, b in pairs]
    return {
        "speedup": other["tokens_per_s"] / baseline["tokens_per_s"],
        "max_abs_diff_score": largest("scores"),
        "max_abs_diff_loss_base": largest("loss_base"),
        "max_abs_diff_loss_ref": largest("loss_ref"),
        "loss_rtol": rtol,
        "dtype": str(dtype).removeprefix("torch."),
        "max_score_diff_over_tolerance": max(score_ratios),
        "scores_agree": max(score_ratios) <= 1.0,
    }
