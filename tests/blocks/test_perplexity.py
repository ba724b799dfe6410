"""The perplexity-filter control block."""

from __future__ import annotations

import copy

import pytest
from datatrove.data import Document

from ai_filters.blocks import PerplexityScorer
from ai_filters.engine.numerics import loss_rtol
from ai_filters.engine.scoring import ScoringConfig, ScoringEngine
from ai_filters.engine.settings import EngineSettings
from tests.helpers.blocks import CODE, HEADS, MAX_TOKENS, WEB


def test_perplexity_scorer_keeps_minus_the_base_loss(loaded):
    documents = [Document(text=text, id=doc_id) for doc_id, text in WEB[:2] + CODE]
    engine = ScoringEngine(loaded, HEADS, ScoringConfig(max_tokens=MAX_TOKENS))
    expected = engine.score_texts([d.text for d in documents])
    scorer = PerplexityScorer(
        settings=EngineSettings(ScoringConfig(max_tokens=MAX_TOKENS), "cpu", "float32")
    )
    rtol = loss_rtol(loaded.config, MAX_TOKENS)  # one pass instead of a doubled batch
    for document, score in zip(scorer(copy.deepcopy(documents)), expected, strict=True):
        metadata = document.metadata
        assert metadata["perplexity_score"] == pytest.approx(-score.loss_base, rel=rtol)
        assert metadata["ai_loss_base"] == pytest.approx(score.loss_base, rel=rtol)
        assert "attention_influence" not in metadata and "ai_loss_ref" not in metadata
