"""The one-task stage that computes every domain's threshold from the score tables."""

from __future__ import annotations

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from ai_filters.fields import DOCUMENT_TOKENS_KEY, SCORE_KEY
from ai_filters.selection.folder import SelectionFolder
from ai_filters.selection.score_tables import ScoreTables
from ai_filters.selection.thresholds import table_thresholds


class DomainThresholds(PipelineStep):
    """Computes every domain's top-``fraction`` threshold over all score tables (one task).

    Reads ``OUT/scores/<domain>/*.parquet`` (written by
    :class:`~ai_filters.blocks.ScoreTableWriter` in the scoring stage), applies the exact rule
    of :mod:`ai_filters.selection.thresholds` to the column ``score_key`` and writes
    ``OUT/thresholds.json``.
    Tokens are the documents' full token counts (``tokens_key``). Memory: the scores of the
    largest domain, 8 bytes a document. Documents passing through the step (if any) are yielded
    unchanged.
    """

    _requires_dependencies = ["numpy", "pyarrow"]

    name = "🧮 domain thresholds"
    type = "📊 - STATS"

    def __init__(
        self,
        output_folder: str,
        fraction: float = 0.2,
        score_key: str = SCORE_KEY,
        tokens_key: str = DOCUMENT_TOKENS_KEY,
    ) -> None:
        super().__init__()
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.output_folder = output_folder
        self.fraction = fraction
        self.score_key = score_key
        self.tokens_key = tokens_key

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if world_size != 1:
            raise ValueError("DomainThresholds needs every score table: run it with tasks=1")
        folder = SelectionFolder(self.output_folder)
        with self.track_time():
            thresholds = table_thresholds(
                ScoreTables(folder), self.score_key, self.tokens_key, self.fraction
            )
        folder.write_thresholds(thresholds)
        for domain, entry in thresholds.items():
            self.stat_update(f"documents_{domain}", value=entry.documents)
            self.stat_update(f"selected_{domain}", value=entry.documents_selected)
        if data:
            yield from data
