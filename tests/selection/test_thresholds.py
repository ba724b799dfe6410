"""The per-domain threshold rule, ties included."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ai_filters.blocks.score_table import table_schema
from ai_filters.selection.folder import SelectionFolder, write_thresholds
from ai_filters.selection.score_tables import ScoreTables
from ai_filters.selection.thresholds import (
    compute_thresholds,
    table_thresholds,
    top_fraction_threshold,
)


def test_top_fraction_of_distinct_scores():
    scores = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    tokens = np.arange(1, 11)
    entry = top_fraction_threshold(scores, tokens, 0.2)
    assert entry.threshold == 0.8  # the 2nd highest of 10
    assert (entry.documents_selected, entry.tied_extra) == (2, 0)
    assert entry.tokens_selected == 3 + 7 and entry.tokens == 55


def test_ties_at_the_threshold_are_all_selected():
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0])
    entry = top_fraction_threshold(scores, np.ones(10, dtype=int), 0.2)
    assert entry.threshold == 0.5
    assert entry.documents_selected == 4 and entry.tied_extra == 2  # k = 2, two more ties


def test_small_domains_keep_at_least_one_document():
    entry = top_fraction_threshold(np.array([0.3, 0.1]), np.array([5, 5]), 0.2)
    assert entry.documents_selected == 1 and entry.threshold == 0.3


def test_thresholds_per_domain_and_file(tmp_path):
    rows = [("web", s, 10) for s in (0.1, 0.2, 0.3, 0.4, 0.5)] + [("code", -0.2, 7)]
    thresholds = compute_thresholds(rows, fraction=0.4)
    assert thresholds["web"].threshold == 0.4 and thresholds["code"].threshold == -0.2
    write_thresholds(thresholds, tmp_path / "thresholds.json")
    written = json.loads((tmp_path / "thresholds.json").read_text())
    assert written["web"]["documents_selected"] == 2 and written["code"]["tokens"] == 7
    with pytest.raises(ValueError):
        compute_thresholds(rows, fraction=0)


def write_tables(root, domain: str, parts: list[list[tuple[float, int]]]) -> None:
    """Score tables of ``domain``: one file per part, rows of (score, tokens)."""
    schema = table_schema(["attention_influence", "ai_doc_tokens"])
    for rank, rows in enumerate(parts):
        path = root / "scores" / domain / f"{rank:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = {
            "id": [f"{domain}/{rank}/{i}" for i in range(len(rows))],
            "domain": [domain] * len(rows),
            "attention_influence": [score for score, _ in rows],
            "ai_doc_tokens": [tokens for _, tokens in rows],
        }
        pq.write_table(pa.Table.from_pydict(table, schema=schema), path)


def test_table_thresholds_equal_the_in_memory_rule(tmp_path):
    """Scores with many ties (two decimals), several files per domain, a one-document domain
    and a domain whose tables are empty: the streaming rule selects exactly what the rule on
    arrays in memory selects."""
    rng = np.random.default_rng(0)
    rows = {
        "web": [
            (round(float(s), 2), int(t))
            for s, t in zip(rng.random(997), rng.integers(1, 900, 997), strict=True)
        ],
        "code": [
            (float(s), int(t))
            for s, t in zip(rng.normal(size=31), rng.integers(5, 50, 31), strict=True)
        ],
        "math": [(0.25, 40)],
    }
    write_tables(tmp_path, "web", [rows["web"][:400], rows["web"][400:401], rows["web"][401:]])
    write_tables(tmp_path, "code", [rows["code"]])
    write_tables(tmp_path, "math", [rows["math"]])
    write_tables(tmp_path, "empty", [[]])
    tables = ScoreTables(SelectionFolder(tmp_path))
    flat = [(d, score, tokens) for d, pairs in rows.items() for score, tokens in pairs]
    for fraction in (0.2, 0.05, 1.0):
        found = table_thresholds(tables, "attention_influence", "ai_doc_tokens", fraction)
        assert found == compute_thresholds(flat, fraction)  # "empty" has no threshold in both
    assert (
        table_thresholds(tables, "attention_influence", "ai_doc_tokens", 0.2)["web"].tied_extra > 0
    )
