"""What the nanotron configs and the proxy runs share: Llama shapes, parameters, WSD phases.

Both train a Llama from scratch with a warmup-stable-decay (WSD) learning-rate schedule in the
proportions of the paper (arXiv 2505.07293): warmup over 0.1 % of the steps, the peak until 75 %,
a decay over the last 25 %. ``SHAPES`` is the one table of model shapes, ``parameter_count``
counts any of them (or a nanotron / transformers ``LlamaConfig``), ``wsd_phases`` places the
three phases for a number of steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

WARMUP_FRACTION = 0.001
DECAY_FRACTION = 0.25
FINAL_LR_DIVISOR = 10  # the decay ends at peak / 10 (the paper does not say: a common choice)
SMOLLM_VOCAB_SIZE = 49152  # the cosmo2 tokenizer, which SmolLM2 uses too


@dataclass(frozen=True)
class LlamaShape:
    """The sizes that fix a Llama's parameter count, named as in nanotron's and transformers'
    ``LlamaConfig`` (so ``LlamaConfig(**asdict(shape), ...)`` builds either)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    tie_word_embeddings: bool


SHAPES: dict[str, LlamaShape] = {
    # the paper's 7B: FFN 13,312, not the 8,192 of its table (see nanotron.plan's notes)
    "nanotron-7b": LlamaShape(4096, 13312, 32, 32, 8, SMOLLM_VOCAB_SIZE, False),
    # the nanotron smoke test: 10M parameters, minutes on one GPU
    "nanotron-tiny": LlamaShape(96, 384, 4, 3, 1, SMOLLM_VOCAB_SIZE, False),
    # the proxy on 2 CPU cores (3.2M parameters with SmolLM2's vocabulary)
    "proxy-tiny": LlamaShape(64, 192, 2, 4, 2, SMOLLM_VOCAB_SIZE, True),
    # the proxy on one GPU (100.7M parameters with SmolLM2's vocabulary)
    "proxy-gpu": LlamaShape(768, 2048, 10, 12, 4, SMOLLM_VOCAB_SIZE, True),
}


class HasLlamaShape(Protocol):
    """Anything with a Llama's sizes: ``LlamaShape``, nanotron's or transformers' config."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int | None
    vocab_size: int
    tie_word_embeddings: bool


def parameter_count(shape: HasLlamaShape) -> int:
    """Parameters of a Llama without biases (nanotron's, and transformers' by default):
    embeddings (twice if untied), per layer q/k/v/o with grouped KV heads, gate/up/down MLP and
    two RMSNorms, plus the final norm."""
    hidden, heads = shape.hidden_size, shape.num_attention_heads
    kv_heads = shape.num_key_value_heads or heads
    head_dim = hidden // heads
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    layer = attention + 3 * hidden * shape.intermediate_size + 2 * hidden
    embeddings = shape.vocab_size * hidden * (1 if shape.tie_word_embeddings else 2)
    return embeddings + shape.num_hidden_layers * layer + hidden


@dataclass(frozen=True)
class WSDPhases:
    """Where the phases of a WSD schedule of ``total_steps`` lie, as scheduler step indices
    (nanotron's ``lr_at`` step, the ``current_step`` of transformers' ``warmup_stable_decay``):
    warmup over ``[0, warmup_steps)``, the peak over ``[warmup_steps, decay_start)``, the decay
    over ``[decay_start, total_steps)``, the final LR from ``total_steps`` on."""

    total_steps: int
    warmup_steps: int
    decay_steps: int

    @property
    def decay_start(self) -> int:
        return self.total_steps - self.decay_steps

    @property
    def stable_steps(self) -> int:
        """Steps at the peak; negative when ``total_steps`` is too short for both phases."""
        return self.decay_start - self.warmup_steps


def wsd_phases(total_steps: int) -> WSDPhases:
    """The paper's phases for ``total_steps``: warmup 0.1 % of the steps, decay the last 25 %,
    each rounded and at least one step. Nothing is checked: a caller that needs a stable phase
    checks ``stable_steps``."""
    return WSDPhases(
        total_steps=total_steps,
        warmup_steps=max(1, round(total_steps * WARMUP_FRACTION)),
        decay_steps=max(1, round(total_steps * DECAY_FRACTION)),
    )
