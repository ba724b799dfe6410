"""The selection report: every document accounted for, and how a selection relates to length
and loss.

:func:`build_report` reads a finished selection folder without reading a document again: the
score tables (``OUT/scores/``, :class:`~ai_filters.selection.score_tables.ScoreTables`),
``thresholds.json``, ``scorer.json`` and the stats the score and select stages recorded under
``OUT/logs/``. It returns what ``report.json`` holds: per domain, documents read, scored,
skipped (by reason), selected and rejected, tokens before and selected, the threshold, and the
conservation checks ``read = scored + skipped`` and ``scored = selected + rejected``; and the
score statistics of :func:`table_statistics`, which the Hub card shows too.
:func:`format_report` turns it into ``report.md``.

AttentionInfluence correlates with the base loss (negatively) and with length; a user deciding
whether to trust a selection needs to see how much of it a perplexity filter would also pick.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np
from datatrove.io import get_datafolder
from datatrove.utils.stats import MetricStats, PipelineStats
from scipy.stats import ConstantInputWarning, spearmanr

from ai_filters.fields import DOCUMENT_TOKENS_KEY, LOSS_BASE_KEY
from ai_filters.markdown import markdown_table
from ai_filters.selection.folder import (
    KEPT_STAT,
    READ_STAT,
    REJECTED_STAT,
    SKIPPED_STAT,
    SelectionFolder,
)
from ai_filters.selection.score_tables import ScoreTables
from ai_filters.selection.thresholds import kth_highest, wanted_count


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (ties share their average rank); NaN when either side is
    constant, has fewer than 2 values or holds a NaN."""
    if len(x) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)  # constant input: NaN, said above
        return float(spearmanr(x, y).statistic)


# --- score statistics ----------------------------------------------------------------------------


SPEARMAN_SAMPLE = 100_000  # documents per domain the rank correlations are computed on


def table_statistics(
    tables: ScoreTables, domain: str, score_key: str, fraction: float, seed: int = 0
) -> dict | None:
    """Statistics of the scored documents of ``domain``, from its score tables.

    Documents, mean tokens (whole documents), the score's mean and quantiles, the mean base
    loss, the Spearman correlation of the score with the base loss and with length, and
    ``ppl_overlap``: the share of the documents at or above the score threshold of the top
    ``fraction`` that the lowest-loss ``fraction`` (a perplexity filter: loss at or below its
    threshold) also holds. Without base losses (the random scorer) the loss columns are NaN.
    Memory: one column of the domain at a time (8 bytes a document); the correlations use a
    uniform sample of at most :data:`SPEARMAN_SAMPLE` documents drawn with ``seed`` (all of
    them in a smaller domain). ``None`` for a domain without scored documents.
    """
    documents = tables.rows(domain)
    if documents == 0:
        return None
    wanted = wanted_count(documents, fraction)
    scores = tables.column(domain, score_key)
    score_mean = float(scores.mean())
    q20, q50, q80 = np.quantile(scores, [0.2, 0.5, 0.8], overwrite_input=True)
    score_threshold = kth_highest(scores, wanted)
    del scores
    has_loss = LOSS_BASE_KEY in tables.columns(domain)
    loss_threshold, loss_mean = float("nan"), float("nan")
    if has_loss:
        losses = -tables.column(domain, LOSS_BASE_KEY)  # the k-th lowest loss, as the k-th highest
        loss_mean = -float(losses.mean())
        loss_threshold = -kth_highest(losses, wanted)
        del losses
    thresholds = (score_threshold, loss_threshold)
    counts, sample = _streamed(tables, domain, score_key, has_loss, thresholds, seed)
    keep = min(1.0, SPEARMAN_SAMPLE / documents)
    return {
        "documents": documents,
        "mean_tokens": counts["tokens"] / documents,
        "score_mean": score_mean,
        "score_p20": float(q20),
        "score_median": float(q50),
        "score_p80": float(q80),
        "loss_base_mean": loss_mean,
        "spearman_score_loss": spearman(sample["score"], sample["loss"]),
        "spearman_score_tokens": spearman(sample["score"], sample["tokens"]),
        "spearman_sample": len(sample["score"]) if keep < 1 else documents,
        "ppl_overlap": counts["both"] / counts["selected"] if has_loss else float("nan"),
        "selected_mean_tokens": counts["selected_tokens"] / counts["selected"],
    }


def _streamed(tables, domain, score_key, has_loss, thresholds, seed):
    """One pass over a domain's columns: token sums, the documents at or above the score
    threshold (and of those, at or below the loss threshold), and the Spearman sample."""
    score_threshold, loss_threshold = thresholds
    names = [score_key, DOCUMENT_TOKENS_KEY] + ([LOSS_BASE_KEY] if has_loss else [])
    keep = min(1.0, SPEARMAN_SAMPLE / tables.rows(domain))
    rng = np.random.default_rng(seed)
    counts = {"tokens": 0, "selected": 0, "selected_tokens": 0, "both": 0}
    parts: dict[str, list[np.ndarray]] = {"score": [], "loss": [], "tokens": []}
    for batch in tables.batches(domain, names):
        score, tokens = batch[score_key], batch[DOCUMENT_TOKENS_KEY]
        loss = batch[LOSS_BASE_KEY] if has_loss else np.full(len(score), np.nan)
        selected = score >= score_threshold
        counts["tokens"] += int(tokens.sum())
        counts["selected"] += int(selected.sum())
        counts["selected_tokens"] += int(tokens.sum(where=selected))
        counts["both"] += int((selected & (loss <= loss_threshold)).sum())
        chosen = rng.random(len(score)) < keep if keep < 1 else slice(None)
        for name, values in (("score", score), ("loss", loss), ("tokens", tokens)):
            parts[name].append(values[chosen])
    return counts, {name: np.concatenate(values) for name, values in parts.items()}


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
    """A markdown table of :func:`table_statistics` rows by domain."""
    header = ["domain"] + [name for name, _ in STATISTICS_COLUMNS]
    rows = [
        [domain] + [fmt.format(row[name]) for name, fmt in STATISTICS_COLUMNS]
        for domain, row in statistics.items()
    ]
    return markdown_table(header, rows)


# --- the selection report ------------------------------------------------------------------------


def stage_totals(folder: SelectionFolder, stage: str) -> dict[str, float]:
    """Every stat of a stage, its tasks' stats files merged with datatrove's
    :class:`PipelineStats`, as ``{stat name: total}`` over the stage's steps."""
    merged = PipelineStats()
    data = get_datafolder(folder.logs(stage))
    for relative in sorted(data.list_files(subdirectory="stats", glob_pattern="*.json")):
        with data.open(relative, "rt") as file:
            merged += PipelineStats.from_json(json.load(file))
    totals: Counter = Counter()
    for step in merged.stats:
        for key, metric in step.stats.items():
            if not isinstance(metric, MetricStats):  # one file's stats stay as loaded
                metric = MetricStats.from_dict(metric)
            totals[key] += metric.total
    return dict(totals)


def _per_domain(totals: dict[str, float], pattern: str) -> Counter:
    """The totals of the stats named like ``pattern`` (``"kept_{domain}"``), by what stands
    in for ``{domain}`` (for :data:`SKIPPED_STAT`, ``<domain>/<reason>``)."""
    prefix = pattern.split("{domain}")[0]
    return Counter(
        {key.removeprefix(prefix): int(v) for key, v in totals.items() if key.startswith(prefix)}
    )


def build_report(folder: SelectionFolder) -> dict:
    """Everything ``report.json`` holds, from the score tables, ``thresholds.json`` and the
    stats the stages recorded; no document is read again."""
    thresholds = folder.read_thresholds()
    record = folder.read_scorer()
    scoring, selecting = stage_totals(folder, "score"), stage_totals(folder, "select")
    read = _per_domain(scoring, READ_STAT)
    skipped: dict[str, Counter] = {}
    for key, count in _per_domain(scoring, SKIPPED_STAT.replace("/{reason}", "")).items():
        domain, reason = key.split("/", 1)
        skipped.setdefault(domain, Counter())[reason] += count
    selected = _per_domain(selecting, KEPT_STAT)
    rejected = _per_domain(selecting, REJECTED_STAT)
    tables = ScoreTables(folder)
    domains, statistics = {}, {}
    for domain in sorted(set(read) | set(tables.domains) | set(skipped)):
        scored = tables.rows(domain)
        skipped_here = dict(sorted(skipped.get(domain, Counter()).items()))
        entry = thresholds.get(domain)
        domains[domain] = {
            "read": read[domain],
            "scored": scored,
            "skipped": sum(skipped_here.values()),
            "skipped_by_reason": skipped_here,
            "selected": selected[domain],
            "rejected": rejected[domain],
            "tokens": entry.tokens if entry else 0,
            "tokens_selected": entry.tokens_selected if entry else 0,
            "threshold": entry.threshold if entry else None,
            "read_equals_scored_plus_skipped": read[domain] == scored + sum(skipped_here.values()),
            "scored_equals_selected_plus_rejected": scored == selected[domain] + rejected[domain],
        }
        row = table_statistics(tables, domain, record.score_key, record.fraction)
        if row is not None:
            statistics[domain] = row
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
