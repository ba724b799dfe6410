"""Scoring a file of documents: read, score in chunks, write scored and skipped documents.

Every document read ends in exactly one of two outputs: the scored file (with the four
metadata fields of :mod:`ai_filters.engine.scoring`) or the skipped file beside it (named like
it with
``.skipped`` before the extension, each record with ``metadata["skip_reason"]``). The summary
counts, per domain, ``read = scored + skipped``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from ai_filters.documents import DocumentWriter, document_format, read_documents
from ai_filters.engine.scoring import ScoringEngine
from ai_filters.fields import SKIP_NO_TEXT, SKIP_REASON_KEY, SKIP_UNREADABLE


def skipped_path(output: str | Path) -> Path:
    """``out.jsonl`` -> ``out.skipped.jsonl`` (likewise for ``.jsonl.gz`` and ``.parquet``)."""
    output = Path(output)
    suffix = document_format(output)
    return output.with_name(output.name[: -len(suffix)] + ".skipped" + suffix)


@dataclass
class ScoreSummary:
    """Counts per domain of one scoring run."""

    read: Counter = field(default_factory=Counter)
    scored: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # key: (domain, reason)
    tokens: Counter = field(default_factory=Counter)
    unreadable: list[dict] = field(default_factory=list)  # metadata of unparsable input

    def skipped_in(self, domain: str) -> int:
        return sum(count for (name, _), count in self.skipped.items() if name == domain)

    def format(self) -> str:
        lines = ["domain | read | scored | skipped | tokens scored"]
        for domain in sorted(self.read):
            lines.append(
                f"{domain} | {self.read[domain]} | {self.scored[domain]} | "
                f"{self.skipped_in(domain)} | {self.tokens[domain]}"
            )
        for (domain, reason), count in sorted(self.skipped.items()):
            lines.append(f"  skipped in {domain}: {count} x {reason}")
        for where in self.unreadable[:10]:
            line = f":{where['source_line']}" if "source_line" in where else ""
            lines.append(f"  unreadable: {where['source_file']}{line}: {where['skip_detail']}")
        if len(self.unreadable) > 10:
            lines.append(f"  ... {len(self.unreadable) - 10} more unreadable records")
        return "\n".join(lines)


def score_file(
    scorer: ScoringEngine,
    input_paths: Sequence[str | Path],
    output_path: str | Path,
    text_key: str = "text",
    domain_key: str = "domain",
    chunk_docs: int = 256,
    progress: Callable[[int, int], None] | None = None,
    strict: bool = False,
) -> ScoreSummary:
    """Score every document of ``input_paths`` into ``output_path`` (and its skipped file).

    Documents are scored ``chunk_docs`` at a time (sorted by length inside a chunk for
    batching) and written in input order. Input that cannot be parsed becomes a skipped
    ``unreadable`` record naming its file and line, and reading goes on, unless ``strict``
    (then :class:`~ai_filters.documents.DocumentReadError` stops the run and nothing is
    written). Both outputs appear atomically at the end.
    """
    summary = ScoreSummary()
    documents = (
        document
        for path in input_paths
        for document in read_documents(path, text_key=text_key, strict=strict)
    )
    with (
        DocumentWriter(output_path) as scored_out,
        DocumentWriter(skipped_path(output_path)) as skipped_out,
    ):
        while chunk := list(islice(documents, chunk_docs)):
            _score_chunk(scorer, chunk, domain_key, summary, scored_out, skipped_out, progress)
    return summary


def reason_before_scoring(document: dict) -> str | None:
    """Why a document cannot even be given to the model (unreadable input, no text)."""
    if document["metadata"].get(SKIP_REASON_KEY) == SKIP_UNREADABLE:
        return SKIP_UNREADABLE
    if not isinstance(document["text"], str):
        return SKIP_NO_TEXT
    return None


def _score_chunk(scorer, chunk, domain_key, summary, scored_out, skipped_out, progress) -> None:
    early = [reason_before_scoring(document) for document in chunk]
    texts = [d["text"] for d, reason in zip(chunk, early, strict=True) if reason is None]
    scores = iter(scorer.score_texts(texts, progress))
    for document, early_reason in zip(chunk, early, strict=True):
        domain = str(document["metadata"].get(domain_key, "all"))
        summary.read[domain] += 1
        score = next(scores) if early_reason is None else None
        reason = early_reason or score.skip_reason
        if reason is not None:
            document["metadata"][SKIP_REASON_KEY] = reason
            if not isinstance(document["text"], str):
                document["metadata"]["original_text"] = repr(document["text"])[:1000]
                document["text"] = ""
            skipped_out.write(document)
            summary.skipped[domain, reason] += 1
            if reason == SKIP_UNREADABLE:
                summary.unreadable.append(document["metadata"])
            if early_reason is not None and progress is not None:
                progress(1, 0)
            continue
        document["metadata"].update(score.as_metadata())
        scored_out.write(document)
        summary.scored[domain] += 1
        summary.tokens[domain] += score.n_tokens
