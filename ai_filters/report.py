"""The selection report: every document accounted for, and how a selection relates to length
and loss.

:func:`build_report` reads a finished selection folder (scored, skipped, selected and rejected
documents, ``thresholds.json`` and the scoring stage's stats) and returns what ``report.json``
holds: per domain, documents read, scored, skipped (by reason), selected and rejected with their
tokens, the threshold, and the conservation checks ``read = scored + skipped`` and
``scored = selected + rejected``; and the score statistics of :func:`domain_statistics`.

AttentionInfluence correlates with the base loss (negatively) and with length; a user deciding
whether to trust a selection needs to see how much of it a perplexity filter would also pick.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
from datatrove.utils.stats import MetricStats, PipelineStats
from scipy.stats import ConstantInputWarning, spearmanr

from ai_filters.documents import read_documents
from ai_filters.layout import SelectionFolder
from ai_filters.markdown import markdown_table


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (ties share their average rank); NaN when either side is
    constant, has fewer than 2 values or holds a NaN."""
    if len(x) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)  # constant input: NaN, said above
        return float(spearmanr(x, y).statistic)


def top_indices(values: Sequence[float], fraction: float, highest: bool = True) -> set[int]:
    """Indices of the ``ceil(fraction * n)`` highest (or lowest) values; ties by index."""
    count = int(np.ceil(fraction * len(values) - 1e-9))
    order = sorted(range(len(values)), key=lambda i: (-values[i] if highest else values[i], i))
    return set(order[:count])


# --- score statistics ----------------------------------------------------------------------------


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


STATISTICS_COLUMNS = (
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
    header = ["domain"] + [name for name, _ in STATISTICS_COLUMNS]
    rows = [
        [domain] + [fmt.format(row[name]) for name, fmt in STATISTICS_COLUMNS]
        for domain, row in statistics.items()
    ]
    return markdown_table(header, rows)


# --- the selection report ------------------------------------------------------------------------


def read_counts(folder: SelectionFolder) -> Counter:
    """Documents read per domain (the readers' ``read_<domain>`` stats), from the scoring
    stage's per-task stats merged with datatrove's :class:`PipelineStats`."""
    merged = PipelineStats()
    for path in sorted((folder.logs("score") / "stats").glob("*.json")):
        merged += PipelineStats.from_json(json.loads(path.read_text()))
    counts: Counter = Counter()
    for step in merged.stats:
        for key, metric in step.stats.items():
            if key.startswith("read_"):  # one file's stats stay as loaded: raw values
                if not isinstance(metric, MetricStats):
                    metric = MetricStats.from_dict(metric)
                counts[key.removeprefix("read_")] += int(metric.total)
    return counts


def _count(paths: Iterable, key=None) -> tuple[Counter, Counter]:
    """Documents and tokens (``ai_doc_tokens``) per domain (or per ``key(document)``)."""
    documents, tokens = Counter(), Counter()
    for path in paths:
        for document in read_documents(path):
            name = key(document) if key else document["metadata"]["domain"]
            documents[name] += 1
            tokens[name] += int(document["metadata"].get("ai_doc_tokens") or 0)
    return documents, tokens


def _shard_paths(shards: dict[str, list]) -> list:
    return [path for paths in shards.values() for path in paths]


def build_report(folder: SelectionFolder) -> dict:
    """Everything ``report.json`` holds, computed from the selection folder."""
    thresholds = folder.read_thresholds()
    record = folder.read_scorer()
    read = read_counts(folder)
    scored, scored_tokens = _count(folder.scored_files())
    selected, selected_tokens = _count(_shard_paths(folder.selected_shards()))
    rejected, _ = _count(_shard_paths(folder.rejected_shards()))
    skipped, _ = _count(
        folder.skipped_files(),
        key=lambda d: (d["metadata"]["domain"], d["metadata"].get("filter_reason", "?")),
    )
    domains = {}
    for domain in sorted(set(read) | set(scored)):
        skipped_here = {reason: n for (name, reason), n in skipped.items() if name == domain}
        domains[domain] = {
            "read": read[domain],
            "scored": scored[domain],
            "skipped": sum(skipped_here.values()),
            "skipped_by_reason": skipped_here,
            "selected": selected[domain],
            "rejected": rejected[domain],
            "tokens": scored_tokens[domain],
            "tokens_selected": selected_tokens[domain],
            "threshold": thresholds[domain].threshold if domain in thresholds else None,
            "read_equals_scored_plus_skipped": read[domain]
            == scored[domain] + sum(skipped_here.values()),
            "scored_equals_selected_plus_rejected": scored[domain]
            == selected[domain] + rejected[domain],
        }
    statistics = domain_statistics(
        (document for path in folder.scored_files() for document in read_documents(path)),
        fraction=record.fraction,
        score_key=record.score_key,
    )
    return {"scorer": record.scorer, "domains": domains, "statistics": statistics}


def conserved(row: dict) -> bool:
    """Whether a domain's documents are all accounted for (both checks hold)."""
    return row["read_equals_scored_plus_skipped"] and row["scored_equals_selected_plus_rejected"]


def format_report(report: dict) -> str:
    """``report.md``: the counts table, then the score statistics."""
    header = ["domain", "read", "scored", "skipped", "selected", "rejected", "threshold"]
    header += ["tokens", "tokens selected", "conserved"]
    rows = []
    for domain, row in report["domains"].items():
        share = row["tokens_selected"] / row["tokens"] if row["tokens"] else 0.0
        threshold = "-" if row["threshold"] is None else f"{row['threshold']:.4f}"
        rows.append(
            [domain]
            + [str(row[key]) for key in ("read", "scored", "skipped", "selected", "rejected")]
            + [threshold, str(row["tokens"]), f"{row['tokens_selected']} ({share:.0%})"]
            + ["yes" if conserved(row) else "NO"]
        )
    return (
        "\n".join(
            [
                f"# Selection by {report['scorer']}",
                "",
                markdown_table(header, rows),
                "",
                "Score statistics of the scored documents (ppl_overlap: share of the top 20 % "
                "that a lowest-loss 20 % perplexity filter also picks):",
                "",
                format_table(report["statistics"]),
            ]
        )
        + "\n"
    )
