"""Per-domain statistics."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import spearmanr

from ai_filters.blocks.score_table import table_schema
from ai_filters.selection.folder import SelectionFolder
from ai_filters.selection.report import format_table, spearman, table_statistics
from ai_filters.selection.score_tables import ScoreTables

FLOAT64_REL = 1e-12  # exact rationals computed in float64: only last-bit rounding differs


def test_spearman_ranks_ties_by_their_average():
    # ranks [1, 2.5, 2.5, 4] against [1, 2, 3, 4]: Pearson of the ranks is 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9**0.5, rel=FLOAT64_REL)


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0, rel=FLOAT64_REL)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0, rel=FLOAT64_REL)
    # x = 1..5, y with one swap: 1 - 6 * 2 / (5 * 24) = 0.9
    assert spearman([1, 2, 3, 4, 5], [1, 2, 3, 5, 4]) == pytest.approx(0.9, rel=FLOAT64_REL)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_table_statistics_match_a_direct_computation(tmp_path):
    """The streaming statistics of a domain's score tables against numpy and scipy on the
    whole arrays (a domain small enough that the Spearman sample is every document)."""
    rng = np.random.default_rng(1)
    score, loss = rng.random(50), rng.random(50) * 3 + 1
    tokens = rng.integers(10, 500, 50)
    schema = table_schema(["attention_influence", "ai_loss_base", "ai_doc_tokens"])
    for rank, part in enumerate((slice(0, 20), slice(20, 50))):
        path = tmp_path / "scores" / "web" / f"{rank:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        count = len(score[part])
        columns = {
            "id": [str(i) for i in range(count)],
            "domain": ["web"] * count,
            "attention_influence": score[part],
            "ai_loss_base": loss[part],
            "ai_doc_tokens": tokens[part],
        }
        pq.write_table(pa.Table.from_pydict(columns, schema=schema), path)
    stats = table_statistics(
        ScoreTables(SelectionFolder(tmp_path)), "web", "attention_influence", 0.2
    )
    selected = score >= np.sort(score)[-10]  # k = ceil(0.2 * 50) = 10
    low_loss = loss <= np.sort(loss)[9]
    assert stats["documents"] == 50 and stats["spearman_sample"] == 50
    # float64 sums and quantiles of the same 50 numbers in another order: last-bit rounding
    assert stats["score_mean"] == pytest.approx(score.mean(), rel=1e-12)
    assert stats["score_median"] == pytest.approx(np.median(score), rel=1e-12)
    assert stats["loss_base_mean"] == pytest.approx(loss.mean(), rel=1e-12)
    assert stats["mean_tokens"] == pytest.approx(tokens.mean(), rel=1e-12)
    assert stats["selected_mean_tokens"] == pytest.approx(tokens[selected].mean(), rel=1e-12)
    assert stats["spearman_score_loss"] == pytest.approx(
        spearmanr(score, loss).statistic, rel=1e-12
    )
    assert stats["ppl_overlap"] == (selected & low_loss).sum() / selected.sum()
    assert "| web | 50 |" in format_table({"web": stats})
