"""The one-task stage that computes every domain's threshold over all scored shards."""

from __future__ import annotations

from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader

from ai_filters.blocks.threshold_filter import document_domain
from ai_filters.layout import SCORED_GLOB, write_thresholds
from ai_filters.scoring import SCORE_KEY
from ai_filters.selection import compute_thresholds


class DomainThresholds(PipelineStep):
    """Computes every domain's top-``fraction`` threshold over all scored shards (one task).

    Reads the ``.jsonl.gz`` shards under ``scored_folder`` (all tasks' output of the scoring
    stage), applies the exact rule of :mod:`ai_filters.selection` to ``metadata[score_key]``
    and writes ``output_path`` (thresholds.json). Tokens are the documents' full token counts
    (``ai_doc_tokens``). Documents passing through the step (if any) are yielded unchanged.
    """

    _requires_dependencies = ["numpy"]

    name = "🧮 domain thresholds"
    type = "📊 - STATS"

    def __init__(
        self,
        scored_folder: str,
        output_path: str | Path,
        fraction: float = 0.2,
        score_key: str = SCORE_KEY,
        domain_key: str = "domain",
        default_domain: str | None = None,
    ) -> None:
        super().__init__()
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.scored_folder = scored_folder
        self.output_path = str(output_path)
        self.fraction = fraction
        self.score_key = score_key
        self.domain_key = domain_key
        self.default_domain = default_domain

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if world_size != 1:
            raise ValueError("DomainThresholds needs every scored shard: run it with tasks=1")
        reader = JsonlReader(self.scored_folder, glob_pattern=SCORED_GLOB)
        rows = (
            (
                document_domain(doc, self.domain_key, self.default_domain),
                doc.metadata[self.score_key],
                doc.metadata["ai_doc_tokens"],
            )
            for doc in reader.run()
        )
        with self.track_time():
            thresholds = compute_thresholds(rows, self.fraction)
        write_thresholds(thresholds, self.output_path)
        for domain, entry in thresholds.items():
            self.stat_update(f"documents_{domain}", value=entry.documents)
            self.stat_update(f"selected_{domain}", value=entry.documents_selected)
        if data:
            yield from data
