"""What every scorer block shares: score bins, exclusions, copies without a loaded model."""

from __future__ import annotations

import copy

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
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


class PlainFilter(BaseFilter):
    """datatrove's own loop: what a filter records when it leaves ``run`` alone."""

    name = "plain"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return True if doc.text else (False, "too_short")

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        return [self.filter(doc) for doc in batch]


def test_scorer_keeps_base_filter_stats_and_timing(heads_file):
    """The scorer block overrides ``run`` (to read and tokenize the next batch while the model
    scores this one); it still records every stat BaseFilter's loop records, times each batch
    in ``time_stats`` (the model's seconds within it), and adds its own."""
    texts = ["", "A first sentence to score.", "Another one, a little longer than that.", "x y z"]

    def documents() -> list[Document]:
        return [Document(text=text, id=str(i)) for i, text in enumerate(texts)]

    plain = PlainFilter(batch_size=2)
    scorer = AttentionInfluenceScorer(
        heads_file,
        settings=EngineSettings(ScoringConfig(max_tokens=MAX_TOKENS), "cpu", "float32"),
        docs_per_batch=2,
    )
    assert [d.id for d in scorer(documents())] == [d.id for d in plain(documents())]
    base_keys, scorer_keys = set(plain.stats.stats), set(scorer.stats.stats)
    assert base_keys <= scorer_keys, f"BaseFilter records {base_keys - scorer_keys} too"
    extra = {"tokens_scored", "attention_influence", "model_seconds", "task_seconds"}
    assert extra <= scorer_keys
    for key in ("total", "forwarded", "dropped", "batches", "dropped_too_short"):
        assert scorer.stats.stats[key].total == plain.stats.stats[key].total, key
    timing = scorer.stats.time_stats
    assert timing.n == plain.stats.time_stats.n == 2  # one sample per batch
    model_seconds = scorer.stats.stats["model_seconds"].total
    assert 0 < model_seconds <= timing.total <= scorer.stats.stats["task_seconds"].total
