"""Keep a document when its score reaches its domain's threshold."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from ai_filters.fields import SCORE_KEY
from ai_filters.selection.folder import KEPT_STAT, REJECTED_STAT, read_threshold_values

BELOW_THRESHOLD = "below_threshold"


class DomainThresholdFilter(BaseFilter):
    """Keeps a document when ``metadata[score_key] >= threshold[domain]``.

    Args:
        thresholds: thresholds.json path, local or any fsspec URL (read in the task, since an
            earlier stage of the same pipeline may write it), or a mapping domain -> threshold.
        score_key: metadata field holding the score, the ``score_key`` of the scorer that ran
            (``attention_influence``, ``perplexity_score``, ``random_score``).
        domain_key: metadata field holding the document's domain.
        default_domain: domain of documents without ``domain_key``; without it such a document
            is an error.
        exclusion_writer: receives the rejected documents (``filter_reason`` =
            ``below_threshold``).

    A document without a score, or whose domain has no threshold, is an error (ValueError):
    run a scorer first, and make thresholds for every domain.
    Stats: ``kept_<domain>`` and ``below_threshold_<domain>`` besides datatrove's own.
    """

    name = "🧠 domain threshold filter"

    def __init__(
        self,
        thresholds: str | Path | Mapping,
        score_key: str = SCORE_KEY,
        domain_key: str = "domain",
        default_domain: str | None = None,
        exclusion_writer: DiskWriter | None = None,
    ) -> None:
        super().__init__(exclusion_writer)
        if isinstance(thresholds, Mapping):
            self.source = "the thresholds mapping"
            self._thresholds: dict[str, float] | None = {
                str(domain): float(value) for domain, value in thresholds.items()
            }
        else:  # read in the task: in a pipeline the file is written by an earlier stage
            self.source = str(thresholds)
            self._thresholds = None
        self.score_key = score_key
        self.domain_key = domain_key
        self.default_domain = default_domain

    @property
    def thresholds(self) -> dict[str, float]:
        if self._thresholds is None:
            self._thresholds = read_threshold_values(self.source)
        return self._thresholds

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        domain = self._domain(doc)
        if domain not in self.thresholds:
            raise ValueError(
                f"domain '{domain}' of document {doc.id} has no threshold in {self.source} "
                f"(domains there: {', '.join(sorted(self.thresholds))})"
            )
        score = doc.metadata.get(self.score_key)
        if score is None:
            raise ValueError(
                f"document {doc.id} has no metadata['{self.score_key}']; run the scorer that "
                "writes it before this filter, or set score_key"
            )
        if score >= self.thresholds[domain]:
            self.stat_update(KEPT_STAT.format(domain=domain))
            return True
        self.stat_update(REJECTED_STAT.format(domain=domain))
        return False, BELOW_THRESHOLD

    def _domain(self, doc: Document) -> str:
        return document_domain(doc, self.domain_key, self.default_domain)


def document_domain(doc: Document, domain_key: str, default_domain: str | None) -> str:
    """The document's domain; a clear error when it has none and no default is given."""
    domain = doc.metadata.get(domain_key, default_domain)
    if domain is None:
        raise ValueError(
            f"document {doc.id} has no metadata['{domain_key}']; pass default_domain= to give "
            "such documents a domain, or set domain_key"
        )
    return str(domain)
