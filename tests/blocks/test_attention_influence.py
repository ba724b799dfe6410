"""The AttentionInfluence scorer block in a real pipeline: JsonlReader -> block -> JsonlWriter."""

from __future__ import annotations

import math
import threading

import pytest
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from ai_filters.blocks import AttentionInfluenceScorer, scorer_base
from ai_filters.blocks.scorer_base import score_bin
from ai_filters.engine.numerics import loss_rtol, score_atol
from ai_filters.engine.scoring import ScoringConfig, ScoringEngine
from ai_filters.engine.settings import EngineSettings
from tests.helpers.blocks import CODE, HEADS, MAX_TOKENS, WEB, block_stats, read_output, write_jsonl


def test_scorer_pipeline_annotates_every_scorable_document(loaded, heads_file, tmp_path):
    write_jsonl(tmp_path / "input" / "web.jsonl", "web", WEB)
    write_jsonl(tmp_path / "input" / "code.jsonl", "code", CODE)
    models_before = dict(scorer_base._MODELS)
    scorer = AttentionInfluenceScorer(
        heads_file,
        settings=EngineSettings(ScoringConfig(max_tokens=MAX_TOKENS), "cpu", "float32"),
        docs_per_batch=2,
        exclusion_writer=JsonlWriter(str(tmp_path / "skipped")),
    )
    LocalPipelineExecutor(
        [JsonlReader(str(tmp_path / "input")), scorer, JsonlWriter(str(tmp_path / "scored"))],
        tasks=2,  # one file per task, both tasks in this process
        workers=1,
        logging_dir=str(tmp_path / "logs"),
    ).run()

    scored, skipped = read_output(tmp_path / "scored"), read_output(tmp_path / "skipped")
    readable = {i for i, text in WEB + CODE if text}
    assert set(scored) | set(skipped) == readable and not set(scored) & set(skipped)
    assert {i: r["metadata"]["filter_reason"] for i, r in skipped.items()} == {
        "web-short": "too_short"
    }
    assert scorer_base._MODELS == models_before  # the tasks took the cached model

    engine = ScoringEngine(loaded, [tuple(h) for h in HEADS], ScoringConfig(max_tokens=MAX_TOKENS))
    ids = sorted(scored)
    expected = engine.score_texts([scored[i]["text"] for i in ids])
    rtol = loss_rtol(loaded.config, MAX_TOKENS)  # the block batches documents differently
    for i, score in zip(ids, expected, strict=True):
        metadata = scored[i]["metadata"]
        assert math.isfinite(metadata["attention_influence"])
        atol = score_atol(score.attention_influence, rtol)
        assert metadata["attention_influence"] == pytest.approx(score.attention_influence, abs=atol)
        assert metadata["ai_loss_base"] == pytest.approx(score.loss_base, rel=rtol)
        assert metadata["ai_loss_ref"] == pytest.approx(score.loss_ref, rel=rtol)
        assert metadata["ai_n_tokens"] == score.n_tokens
        assert metadata["domain"] == i.split("-")[0]

    stats = block_stats(tmp_path / "logs", AttentionInfluenceScorer.name)
    assert stats["forwarded"] == len(scored)
    assert stats["dropped_too_short"] == 1
    assert stats["tokens_scored"] == sum(score.n_tokens for score in expected)
    bins = {key: value for key, value in stats.items() if key.startswith("score_bin_")}
    assert sum(bins.values()) == len(scored)
    assert bins == {
        key: sum(score_bin(s.attention_influence) == key for s in expected) for key in bins
    }


def test_scorer_rejects_bad_settings_before_loading(heads_file):
    with pytest.raises(ValueError, match="mask mode"):
        AttentionInfluenceScorer(
            heads_file, settings=EngineSettings(ScoringConfig(mask_mode="nope"))
        )


def test_scorer_reads_the_next_batch_in_the_background(heads_file):
    """The block's input is read (and tokenized) by the engine's background thread, and the
    documents come out in input order, as BaseFilter gives them."""
    reading_threads = []

    def documents():
        for doc_id, text in WEB + CODE:
            reading_threads.append(threading.current_thread().name)
            yield Document(text=text, id=doc_id, metadata={"domain": doc_id.split("-")[0]})

    scorer = AttentionInfluenceScorer(
        heads_file,
        settings=EngineSettings(ScoringConfig(max_tokens=MAX_TOKENS), "cpu", "float32"),
        docs_per_batch=2,
    )
    kept = [doc.id for doc in scorer.run(documents())]
    scorable = [doc_id for doc_id, text in WEB + CODE if text and doc_id != "web-short"]
    assert kept == scorable
    assert len(reading_threads) == len(WEB + CODE)
    assert all(name.startswith("tokenize") for name in reading_threads), set(reading_threads)
