"""Per-domain statistics of scored documents, and how a selection relates to length and loss.

AttentionInfluence correlates with the base loss (negatively) and with length; a user deciding
whether to trust a selection needs to see how much of it a perplexity filter would also pick.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank."""
    array = np.asarray(values, dtype=float)
    order = np.argsort(array, kind="stable")
    result = np.empty(len(array))
    sorted_values = array[order]
    start = 0
    while start < len(array):
        end = start
        while end + 1 < len(array) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        result[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (NaN when either side is constant, has < 2 values or a NaN)."""
    if len(x) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def top_indices(values: Sequence[float], fraction: float, highest: bool = True) -> set[int]:
    """Indices of the ``ceil(fraction * n)`` highest (or lowest) values; ties by index."""
    count = int(np.ceil(fraction * len(values) - 1e-9))
    order = sorted(range(len(values)), key=lambda i: (-values[i] if highest else values[i], i))
    return set(order[:count])


def domain_statistics(
    documents: Iterable[dict],
    domain_key: str = "domain",
    fraction: float = 0.2,
    score_key: str = "attention_influence",
) -> dict[str, dict]:
    """Statistics of the scored documents of each domain.

    For each domain: documents, mean tokens (whole documents: ``ai_doc_tokens``), the score's
    (``metadata[score_key]``) mean / quantiles, mean base loss, Spearman of the score with base
    loss and with document length, and ``ppl_overlap``: the share of the top ``fraction`` by
    score that the lowest-loss ``fraction`` (a perplexity filter) also selects. Without base
    losses (the random scorer) the loss columns are NaN.
    """
    by_domain: dict[str, list[dict]] = defaultdict(list)
    for document in documents:
        metadata = document["metadata"]
        if metadata.get(score_key) is not None:
            by_domain[str(metadata.get(domain_key, "all"))].append(metadata)
    return {
        domain: _statistics(rows, fraction, score_key) for domain, rows in sorted(by_domain.items())
    }


def _statistics(rows: list[dict], fraction: float, score_key: str) -> dict:
    score = [row[score_key] for row in rows]
    loss = [row.get("ai_loss_base", float("nan")) for row in rows]
    tokens = [row.get("ai_doc_tokens") or row["ai_n_tokens"] for row in rows]
    selected = top_indices(score, fraction)
    has_loss = bool(np.isfinite(loss).all())
    low_loss = top_indices(loss, fraction, highest=False) if has_loss else set()
    q20, q50, q80 = np.quantile(score, [0.2, 0.5, 0.8])
    return {
        "documents": len(rows),
        "mean_tokens": float(np.mean(tokens)),
        "score_mean": float(np.mean(score)),
        "score_p20": float(q20),
        "score_median": float(q50),
        "score_p80": float(q80),
        "loss_base_mean": float(np.mean(loss)),
        "spearman_score_loss": spearman(score, loss),
        "spearman_score_tokens": spearman(score, tokens),
        "ppl_overlap": len(selected & low_loss) / len(selected)
        if selected and has_loss
        else float("nan"),
        "selected_mean_tokens": float(np.mean([tokens[i] for i in selected])) if selected else 0.0,
    }


COLUMNS = (
    ("domain", "{}"),
    ("documents", "{:d}"),
    ("mean_tokens", "{:.0f}"),
    ("score_mean", "{:.4f}"),
    ("score_p20", "{:.4f}"),
    ("score_median", "{:.4f}"),
    ("score_p80", "{:.4f}"),
    ("loss_base_mean", "{:.3f}"),
    ("spearman_score_loss", "{:+.2f}"),
    ("spearman_score_tokens", "{:+.2f}"),
    ("ppl_overlap", "{:.2f}"),
)


def format_table(statistics: dict[str, dict]) -> str:
    """A markdown table of :func:`domain_statistics`."""
    header = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * len(COLUMNS)]
    for domain, row in statistics.items():
        cells = [COLUMNS[0][1].format(domain)]
        cells += [fmt.format(row[name]) for name, fmt in COLUMNS[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
