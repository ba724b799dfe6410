"""How far two evaluations of the same loss may differ when only floating-point rounding differs.

The engine's losses are computed again and again along different paths: one document alone or
in a padded batch, plain and masked rows in one forward pass, on a CPU with AVX-512 or AVX2
kernels, on one thread or two. Each path sums the same products in another order, so the
results differ in their last bits, and by how much follows from the arithmetic:

- a dot product of length ``k`` in a floating-point format of unit roundoff ``u`` carries a
  relative rounding error of about ``sqrt(k) * u`` (the probabilistic bound of Higham and Mary,
  SIAM J. Sci. Comput. 2019, which holds for random-like rounding; the worst case ``k * u``
  assumes every rounding goes the same way, which blocked kernels do not do);
- a decoder layer adds such an error to the residual stream and ``L`` layers add independent
  ones, so a token's loss carries about ``sqrt(L * k) * u``, with ``k`` the widest sum in a
  layer: the hidden size, the MLP's intermediate size, or the attention's sequence length;
- a mean of per-token losses keeps the per-token relative bound (no credit is taken for errors
  cancelling across tokens: kernel differences can be systematic).

For SmolLM2-135M (30 layers, intermediate size 1,536) in fp32 that is a relative tolerance of
1.3e-5 per loss, so a loss of 3 may move by 4e-5 while a bug of 1e-4 in it is still caught.
A score ``s = (L_ref - L_base) / L_base`` moves by at most ``(1 + |s|) * 2 * rtol`` when each
loss moves by ``rtol`` relative: scores are compared with that absolute tolerance.

In bf16 that formula bounds nothing: with ``u = 2**-8`` it comes out near 1 relative for these
models (0.84 for SmolLM2-135M at 512 tokens). bf16 scores are held to a measured bound instead,
:data:`BF16_SCORE_DIFF` (:func:`score_tolerance`).

The start-up checks compare one operation evaluated twice, or with its exact result, and use
the same rule for one dot product (:func:`dot_rtol`). In bf16 and fp16 the operands are stored
in the half format but CPU and GPU matrix and attention kernels accumulate in fp32, so a dot
product of length ``k`` carries ``sqrt(k) * u_fp32`` from its sums and one rounding ``u`` of its
result to the half format: for a hidden size of 576 in bf16, ``1.4e-6 + 0.0039``, where the
rule of fp32 arithmetic with bf16's ``u`` would give 0.094, 24 times looser.
"""

from __future__ import annotations

import math

import torch

UNIT_ROUNDOFF = {
    torch.float64: 2.0**-53,
    torch.float32: 2.0**-24,
    torch.bfloat16: 2.0**-8,
    torch.float16: 2.0**-11,
}
# the format the kernels accumulate sums of each format in
ACCUMULATOR = {torch.bfloat16: torch.float32, torch.float16: torch.float32}


# The largest |score in bf16 - score in fp32| measured on the CPU: 0.01039 over 80 demo
# documents of up to 256 tokens, SmolLM2-135M and its 14 detected heads, decoder in bf16, output
# layer and loss in fp32 (max_abs_diff_score of benchmarks/results/bf16_cpu_20261202-031624.json,
# `python benchmarks/bench_bf16.py --docs-per-domain 20`), rounded up. The fp32 scores' spread
# (std) there was 0.162.
BF16_SCORE_DIFF = 0.0104


def widest_sum(config, sequence_length: int) -> int:
    """The longest sum one decoder layer computes for a sequence of ``sequence_length`` tokens:
    the hidden size, the MLP's intermediate size, or the attention's key count."""
    intermediate = getattr(config, "intermediate_size", None) or 0
    return max(config.hidden_size, intermediate, sequence_length)


def loss_rtol(config, sequence_length: int, dtype: torch.dtype = torch.float32) -> float:
    """Relative tolerance between two evaluations of a mean next-token loss of a model with
    ``config`` on sequences of up to ``sequence_length`` tokens, computed in ``dtype``, that
    differ only in the order of their sums: ``sqrt(layers * widest sum) * unit roundoff``."""
    layers = config.num_hidden_layers
    return math.sqrt(layers * widest_sum(config, sequence_length)) * UNIT_ROUNDOFF[dtype]


def score_atol(score: float, rtol: float) -> float:
    """Absolute tolerance of ``score = (L_ref - L_base) / L_base`` when both losses carry the
    relative tolerance ``rtol``: ``(1 + |score|) * 2 * rtol``."""
    return (1.0 + abs(score)) * 2.0 * rtol


def score_tolerance(score: float, rtol: float, dtype: torch.dtype = torch.float32) -> float:
    """Absolute tolerance between two evaluations of ``score`` computed in ``dtype``.

    fp32 and fp64: :func:`score_atol` of the arithmetic's ``rtol``. bf16: the measured bound,
    ``2 * BF16_SCORE_DIFF`` (each of the two bf16 scores lies within :data:`BF16_SCORE_DIFF` of
    the fp32 score). Other dtypes have no measured bound: ``ValueError``.
    """
    if dtype in (torch.float32, torch.float64):
        return score_atol(score, rtol)
    if dtype == torch.bfloat16:
        return 2.0 * BF16_SCORE_DIFF
    raise ValueError(f"no score tolerance measured for {dtype}")


def dot_rtol(length: int, dtype: torch.dtype) -> float:
    """Rounding error of a dot product of ``length`` terms whose operands are stored in
    ``dtype``, relative to the sum of the terms' magnitudes: ``sqrt(length)`` unit roundoffs
    of the accumulator (:data:`ACCUMULATOR`: fp32 for the half formats) plus one of ``dtype``
    for the rounding of the result."""
    accumulator = ACCUMULATOR.get(dtype, dtype)
    return math.sqrt(length) * UNIT_ROUNDOFF[accumulator] + UNIT_ROUNDOFF[dtype]


def uniform_mean_rtol(length: int, dtype: torch.dtype) -> float:
    """Tolerance between an attention kernel's output for a zero query over ``length`` keys
    (softmax weights ``1/length``, each rounded to ``dtype``, then a weighted sum: one
    :func:`dot_rtol`) and the exact mean of the value vectors, relative to the mean of their
    magnitudes; doubled, for the rounding of the mean it is compared with."""
    return 2.0 * (UNIT_ROUNDOFF[dtype] + dot_rtol(length, dtype))
