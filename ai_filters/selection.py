"""Per-domain selection thresholds: the top fraction of each domain by AttentionInfluence.

Scores are comparable only within a domain (web text, textbooks, code and math have very
different losses), so the paper keeps the top 20 % of the documents *of each domain*.

Rule, exact (every score of a domain is held in memory: 8 bytes + the token count per
document, about 2 GB for the 250M documents of the SmolLM corpus):

- ``k = ceil(fraction * n)`` for the ``n`` scored documents of a domain (at least 1);
- the threshold is the ``k``-th highest score;
- a document is selected when its score is ``>=`` the threshold, so documents tied with the
  ``k``-th score are all selected, and a domain may select more than ``k`` documents by exactly
  the number of extra ties (reported as ``tied_extra``). Ties never split arbitrarily, so the
  selection does not depend on the order or sharding of the input.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DomainThreshold:
    """The threshold of one domain and what it selects."""

    threshold: float
    fraction: float
    documents: int
    tokens: int
    documents_selected: int
    tokens_selected: int
    tied_extra: int


def top_fraction_threshold(
    scores: np.ndarray, tokens: np.ndarray, fraction: float
) -> DomainThreshold:
    """The threshold keeping the top ``fraction`` of ``scores`` (see the module's tie rule)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if len(scores) == 0:
        raise ValueError("a domain without scored documents has no threshold")
    wanted = max(1, math.ceil(fraction * len(scores) - 1e-9))
    threshold = float(np.sort(scores)[::-1][wanted - 1])
    selected = scores >= threshold
    return DomainThreshold(
        threshold=threshold,
        fraction=fraction,
        documents=int(len(scores)),
        tokens=int(tokens.sum()),
        documents_selected=int(selected.sum()),
        tokens_selected=int(tokens[selected].sum()),
        tied_extra=int(selected.sum()) - wanted,
    )


def compute_thresholds(
    rows: Iterable[tuple[str, float, int]], fraction: float = 0.2
) -> dict[str, DomainThreshold]:
    """Thresholds per domain from ``(domain, score, tokens)`` rows."""
    scores: dict[str, list[float]] = {}
    tokens: dict[str, list[int]] = {}
    for domain, score, count in rows:
        scores.setdefault(domain, []).append(score)
        tokens.setdefault(domain, []).append(count)
    return {
        domain: top_fraction_threshold(
            np.asarray(scores[domain], dtype=np.float64),
            np.asarray(tokens[domain], dtype=np.int64),
            fraction,
        )
        for domain in sorted(scores)
    }
