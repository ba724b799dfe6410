"""What every scorer block shares: score bins, exclusions, copies without a loaded model."""

from __future__ import annotations

import copy

from datatrove.data import Document
from datatrove.pipeline.writers import JsonlWriter

from ai_filters.blocks import AttentionInfluenceScorer
from ai_filters.blocks.scorer_base import score_bin
from ai_filters.engine.scoring import ScoringConfig
from ai_filters.engine.settings import EngineSettings
from tests.helpers.blocks import MAX_TOKENS, read_output


def test_score_bins():
    assert score_bin(0.0) == "score_bin_0.00"
    assert score_bin(0.1) == "score_bin_0.10"
    assert score_bin(0.149) == "score_bin_0.10"
    assert score_bin(-0.01) == "score_bin_-0.05"
    assert score_bin(-3.0) == "score_bin_-0.50"
    assert score_bin(7.0) == "score_bin_1.45"


def test_scorer_excludes_empty_and_non_string_texts(heads_file, tmp_path):
    """Documents built in code can carry texts a reader would drop; they are excluded, counted."""
    documents = [
        Document(text="", id="empty"),
        Document(text=None, id="none"),
        Document(text="A short sentence to score.", id="ok"),
    ]
    scorer = AttentionInfluenceScorer(
        heads_file,
        settings=EngineSettings(ScoringConfig(max_tokens=MAX_TOKENS), "cpu", "float32"),
        exclusion_writer=JsonlWriter(str(tmp_path / "skipped")),
    )
    kept = list(scorer(documents))  # run() closes the exclusion writer at the end
    assert [doc.id for doc in kept] == ["ok"]
    skipped = read_output(tmp_path / "skipped")
    assert {i: r["metadata"]["filter_reason"] for i, r in skipped.items()} == {
        "empty": "too_short",
        "none": "missing_text",
    }
    assert scorer.stats["dropped_missing_text"].total == 1
    assert scorer._engine is not None and copy.deepcopy(scorer)._engine is None
