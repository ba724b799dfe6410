"""Per-domain selection thresholds: the top fraction of each domain by AttentionInfluence.

Scores are comparable only within a domain (web text, textbooks, code and math have very
different losses), so the paper keeps the top 20 % of the documents *of each domain*.

Rule, exact:

- ``k = ceil(fraction * n)`` for the ``n`` scored documents of a domain (at least 1);
- the threshold is the ``k``-th highest score;
- a document is selected when its score is ``>=`` the threshold, so documents tied with the
  ``k``-th score are all selected, and a domain may select more than ``k`` documents by exactly
  the number of extra ties (reported as ``tied_extra``). Ties never split arbitrarily, so the
  selection does not depend on the order or sharding of the input.

:func:`table_thresholds` applies the rule to the score tables of a selection folder in bounded
memory: the scores of one domain in one float64 array (8 bytes a document), the ``k``-th
highest found by an in-place partition, then the counts in a streaming pass; nothing else is
held. :func:`top_fraction_threshold` is the same rule on arrays already in memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ai_filters.selection.score_tables import ScoreTables


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


def wanted_count(documents: int, fraction: float) -> int:
    """``k = ceil(fraction * documents)``, at least 1: the documents a domain keeps before ties."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return max(1, math.ceil(fraction * documents - 1e-9))


def top_fraction_threshold(
    scores: np.ndarray, tokens: np.ndarray, fraction: float
) -> DomainThreshold:
    """The threshold keeping the top ``fraction`` of ``scores`` (see the module's tie rule)."""
    if len(scores) == 0:
        raise ValueError("a domain without scored documents has no threshold")
    wanted = wanted_count(len(scores), fraction)
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
    """Thresholds per domain from ``(domain, score, tokens)`` rows held in memory."""
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


def kth_highest(values: np.ndarray, k: int) -> float:
    """The ``k``-th highest of ``values`` (1-based), found by partitioning ``values`` in place:
    their order is lost, no copy is made."""
    position = len(values) - k
    values.partition(position)
    return float(values[position])


def table_threshold(
    tables: ScoreTables, domain: str, score_key: str, tokens_key: str, fraction: float
) -> DomainThreshold | None:
    """The rule on the score tables of ``domain``; ``None`` when it has no scored document.

    Memory: the domain's scores in one float64 array; the counts of documents and tokens at or
    above the threshold come from a second, streaming pass over the score and token columns.
    """
    documents = tables.rows(domain)
    if documents == 0:
        return None
    wanted = wanted_count(documents, fraction)
    scores = tables.column(domain, score_key)
    threshold = kth_highest(scores, wanted)
    del scores
    selected = tokens = tokens_selected = 0
    for batch in tables.batches(domain, [score_key, tokens_key]):
        kept = batch[score_key] >= threshold
        selected += int(kept.sum())
        tokens += int(batch[tokens_key].sum())
        tokens_selected += int(batch[tokens_key].sum(where=kept))
    return DomainThreshold(
        threshold=threshold,
        fraction=fraction,
        documents=documents,
        tokens=tokens,
        documents_selected=selected,
        tokens_selected=tokens_selected,
        tied_extra=selected - wanted,
    )


def table_thresholds(
    tables: ScoreTables, score_key: str, tokens_key: str, fraction: float
) -> dict[str, DomainThreshold]:
    """:func:`table_threshold` of every domain with scored documents, sorted by domain."""
    thresholds = {}
    for domain in sorted(tables.domains):
        entry = table_threshold(tables, domain, score_key, tokens_key, fraction)
        if entry is not None:
            thresholds[domain] = entry
    return thresholds
