"""The method's scorer block: AttentionInfluence of every document it can score."""

from __future__ import annotations

from pathlib import Path

import torch
from datatrove.pipeline.writers.disk_base import DiskWriter

from ai_filters.blocks.scorer_base import EngineScorer, score_bin, shared_model
from ai_filters.heads import RetrievalHeads
from ai_filters.scoring import DocumentScore, ScoringEngine


class AttentionInfluenceScorer(EngineScorer):
    """Adds AttentionInfluence metadata to every document it can score; drops the others.

    Args:
        heads_path: heads file from ``ai-filters detect-heads`` (read in the task).
        model: model spec; default: the model named in the heads file.
        max_tokens: tokens per sequence fed at once; default ``min(4096, model context)``.
        batch_size: documents handed to the engine at once (datatrove's batch); the engine
            sorts them by length, so larger batches pad less.
        forward_batch_size: sequences per forward pass (at most).
        batch_tokens: padded tokens per forward pass (at most; one long document may exceed;
            default: by device, see :class:`~ai_filters.scoring.ScoringConfig`).
        windows: score long documents in consecutive windows of ``max_tokens`` instead of
            truncating them.
        mask_mode: ``uniform`` (the method) or ``zero`` (the ablation).
        device: torch device; default ``cuda:<rank % GPUs>`` when CUDA is available, else CPU.
        dtype: torch dtype or its name; default bf16 on a GPU, fp32 on a CPU.
        ignore_fingerprint: accept a heads file found on other weights of the same shape.
        exclusion_writer: receives the documents that cannot be scored.

    Stats: ``forwarded`` (documents scored), ``tokens_scored`` (tokens per scored document,
    total and mean), ``attention_influence`` (scores: mean, min, max), ``score_bin_<edge>``
    (histogram, see :func:`score_bin`), ``dropped_<reason>`` (documents not scored).
    """

    name = "🧠 AttentionInfluence scorer"
    type = "📊 - SCORER"
    score_key = "attention_influence"

    def __init__(
        self,
        heads_path: str | Path,
        model: str | None = None,
        max_tokens: int | None = None,
        batch_size: int = 64,
        forward_batch_size: int = 64,
        batch_tokens: int | None = None,
        windows: bool = False,
        mask_mode: str = "uniform",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        ignore_fingerprint: bool = False,
        exclusion_writer: DiskWriter | None = None,
    ) -> None:
        super().__init__(
            model,
            max_tokens,
            batch_size,
            forward_batch_size,
            batch_tokens,
            windows,
            mask_mode,
            device,
            dtype,
            exclusion_writer,
        )
        self.heads_path = str(heads_path)
        self.ignore_fingerprint = ignore_fingerprint

    def _build_engine(self) -> ScoringEngine:
        heads = RetrievalHeads.load(self.heads_path)
        loaded = shared_model(self.model or heads.model, self._device(), self.dtype)
        heads.check_model(loaded, strict_fingerprint=not self.ignore_fingerprint)
        return self._engine(loaded, heads.selected_heads)

    def _score_value(self, score: DocumentScore) -> float:
        return score.attention_influence

    def _count_score(self, value: float) -> None:
        super()._count_score(value)
        self.stat_update(score_bin(value))
