"""The method's scorer block: AttentionInfluence of every document it can score."""

from __future__ import annotations

from pathlib import Path

from datatrove.pipeline.writers.disk_base import DiskWriter

from ai_filters.blocks.scorer_base import EngineScorer, score_bin
from ai_filters.engine.heads_file import RetrievalHeads
from ai_filters.engine.scoring import DocumentScore, ScoringEngine
from ai_filters.engine.settings import EngineSettings
from ai_filters.fields import SCORE_KEY


class AttentionInfluenceScorer(EngineScorer):
    """Adds AttentionInfluence metadata to every document it can score; drops the others.

    Args:
        heads_path: heads file from ``ai-filters detect-heads`` (read in the task).
        model: model spec; default: the model named in the heads file.
        settings: every engine setting (max tokens, batching, packing, mask mode, device, dtype,
            ...); default: :class:`~ai_filters.engine.settings.EngineSettings`'s defaults.
        docs_per_batch: documents handed to the engine at once (datatrove's batch); the engine
            sorts them by length, so larger batches pad less.
        ignore_fingerprint: accept a heads file found on other weights of the same shape.
        exclusion_writer: receives the documents that cannot be scored.

    Stats: ``forwarded`` (documents scored), ``tokens_scored`` (tokens per scored document,
    total and mean), ``attention_influence`` (scores: mean, min, max), ``score_bin_<edge>``
    (histogram, see :func:`score_bin`), ``dropped_<reason>`` (documents not scored).
    """

    name = "🧠 AttentionInfluence scorer"
    type = "📊 - SCORER"
    score_key = SCORE_KEY

    def __init__(
        self,
        heads_path: str | Path,
        model: str | None = None,
        settings: EngineSettings | None = None,
        docs_per_batch: int = 64,
        ignore_fingerprint: bool = False,
        exclusion_writer: DiskWriter | None = None,
    ) -> None:
        super().__init__(model, settings or EngineSettings(), docs_per_batch, exclusion_writer)
        self.heads_path = str(heads_path)
        self.ignore_fingerprint = ignore_fingerprint

    def _build_engine(self) -> ScoringEngine:
        heads = RetrievalHeads.load(self.heads_path)
        loaded = self._shared_model(self.model or heads.model)
        heads.check_model(loaded, strict_fingerprint=not self.ignore_fingerprint)
        return ScoringEngine(loaded, heads.selected_heads, self.config)

    def _score_value(self, score: DocumentScore) -> float:
        return score.attention_influence

    def _count_score(self, value: float) -> None:
        super()._count_score(value)
        self.stat_update(score_bin(value))
