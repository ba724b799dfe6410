"""The perplexity-filter control: minus the base loss, the lowest-loss documents kept."""

from __future__ import annotations

from datatrove.pipeline.writers.disk_base import DiskWriter

from ai_filters.blocks.scorer_base import EngineScorer
from ai_filters.engine.models import DEFAULT_MODEL
from ai_filters.engine.scoring import DocumentScore, ScoringEngine
from ai_filters.engine.settings import EngineSettings
from ai_filters.fields import PERPLEXITY_SCORE_KEY


class PerplexityScorer(EngineScorer):
    """The perplexity-filter baseline: ``perplexity_score`` = minus the document's base loss.

    One forward pass per document (no masked copy), half the cost of AttentionInfluence. Higher
    scores are kept, so the top fraction is the lowest-loss fraction of each domain. Arguments
    as :class:`AttentionInfluenceScorer` (``model`` defaults to the embedded model); stats
    ``perplexity_score`` (mean, min, max), ``tokens_scored`` and ``dropped_<reason>``.
    """

    name = "📉 perplexity scorer"
    type = "📊 - SCORER"
    score_key = PERPLEXITY_SCORE_KEY

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        engine: EngineSettings | None = None,
        docs_per_batch: int = 64,
        exclusion_writer: DiskWriter | None = None,
    ) -> None:
        super().__init__(model, engine or EngineSettings(), docs_per_batch, exclusion_writer)

    def _build_engine(self) -> ScoringEngine:
        return ScoringEngine(self._shared_model(self.model), [], self.config)

    def _score_value(self, score: DocumentScore) -> float:
        return -score.loss_base
