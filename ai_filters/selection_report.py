"""The last stage of the selection pipeline: account for every document and describe the selection.

Reads the pipeline's output folder (``scored/``, ``skipped/``, ``selected/``, ``rejected/``,
``thresholds.json`` and the scoring stage's per-task stats) and writes ``report.md`` and
``report.json``: per domain, documents read, scored, skipped (by reason), selected and rejected
with their tokens, the threshold, and the score statistics of :mod:`ai_filters.report`. The
conservation checks ``read = scored + skipped`` and ``scored = selected + rejected`` are part
of the report; a broken one makes the step fail.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from ai_filters.documents import read_documents
from ai_filters.report import domain_statistics, format_table
from ai_filters.selection import ScorerRecord


def _stat_total(value) -> int:
    return int(value["total"] if isinstance(value, dict) else value)


def read_counts(stats_folder: Path) -> Counter:
    """Documents read per domain, summed over the scoring stage's per-task stats files."""
    counts: Counter = Counter()
    for path in sorted(stats_folder.glob("*.json")):
        for step in json.loads(path.read_text()):
            for key, value in step.get("stats", {}).items():
                if key.startswith("read_"):
                    counts[key.removeprefix("read_")] += _stat_total(value)
    return counts


def _count(folder: Path, pattern: str, key=None) -> tuple[Counter, Counter]:
    """Documents and tokens (``ai_doc_tokens``) per domain (or per ``key(document)``)."""
    documents, tokens = Counter(), Counter()
    for path in sorted(folder.glob(pattern)):
        for document in read_documents(path):
            name = key(document) if key else document["metadata"]["domain"]
            documents[name] += 1
            tokens[name] += int(document["metadata"].get("ai_doc_tokens") or 0)
    return documents, tokens


def build_report(out: Path) -> dict:
    """Everything ``report.json`` holds, computed from the output folder ``out``."""
    thresholds = json.loads((out / "thresholds.json").read_text())
    record = ScorerRecord.read(out)
    read = read_counts(out / "logs" / "score" / "stats")
    scored, scored_tokens = _count(out / "scored", "**/*.jsonl.gz")
    selected, selected_tokens = _count(out / "selected", "data/**/*.parquet")
    rejected, _ = _count(out / "rejected", "data/**/*.parquet")
    skipped, _ = _count(
        out / "skipped",
        "**/*.jsonl.gz",
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
            "threshold": thresholds.get(domain, {}).get("threshold"),
            "read_equals_scored_plus_skipped": read[domain]
            == scored[domain] + sum(skipped_here.values()),
            "scored_equals_selected_plus_rejected": scored[domain]
            == selected[domain] + rejected[domain],
        }
    statistics = domain_statistics(
        (
            document
            for path in sorted((out / "scored").glob("**/*.jsonl.gz"))
            for document in read_documents(path)
        ),
        fraction=record.fraction,
        score_key=record.score_key,
    )
    return {"scorer": record.scorer, "domains": domains, "statistics": statistics}


def format_report(report: dict) -> str:
    lines = [
        f"# Selection by {report['scorer']}",
        "",
        "| domain | read | scored | skipped | selected | rejected | threshold | tokens | "
        "tokens selected | conserved |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for domain, row in report["domains"].items():
        conserved = (
            row["read_equals_scored_plus_skipped"] and row["scored_equals_selected_plus_rejected"]
        )
        share = row["tokens_selected"] / row["tokens"] if row["tokens"] else 0.0
        lines.append(
            f"| {domain} | {row['read']} | {row['scored']} | {row['skipped']} | "
            f"{row['selected']} | {row['rejected']} | {row['threshold']:.4f} | {row['tokens']} | "
            f"{row['tokens_selected']} ({share:.0%}) | {'yes' if conserved else 'NO'} |"
        )
    lines += [
        "",
        "Score statistics of the scored documents (ppl_overlap: share of the top 20 % "
        "that a lowest-loss 20 % perplexity filter also picks):",
        "",
        format_table(report["statistics"]),
    ]
    return "\n".join(lines) + "\n"


class SelectionReport(PipelineStep):
    """Writes ``report.md`` / ``report.json`` into the pipeline's output folder (one task)."""

    name = "🧾 selection report"
    type = "📊 - STATS"

    def __init__(self, output_folder: str) -> None:
        super().__init__()
        self.output_folder = output_folder

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        out = Path(self.output_folder)
        report = build_report(out)
        (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (out / "report.md").write_text(format_report(report))
        broken = [
            domain
            for domain, row in report["domains"].items()
            if not (
                row["read_equals_scored_plus_skipped"]
                and row["scored_equals_selected_plus_rejected"]
            )
        ]
        if broken:
            raise RuntimeError(f"documents not accounted for in domains {broken}; see report.md")
        if data:
            yield from data
