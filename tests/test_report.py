"""Per-domain statistics."""

from __future__ import annotations

import math

import pytest

from ai_filters.report import domain_statistics, format_table, spearman, top_indices

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


def test_top_indices():
    assert top_indices([0.1, 0.9, 0.5, 0.7, 0.3], 0.4) == {1, 3}
    assert top_indices([0.1, 0.9, 0.5, 0.7, 0.3], 0.4, highest=False) == {0, 4}


def test_domain_statistics_and_perplexity_overlap():
    docs = []
    for i in range(10):
        # the highest scores have the lowest losses: a perplexity filter picks the same docs
        docs.append(
            {
                "metadata": {
                    "domain": "web",
                    "attention_influence": i / 10,
                    "ai_loss_base": 5 - i * 0.1,
                    "ai_loss_ref": 6.0,
                    "ai_n_tokens": 100 + i,
                }
            }
        )
    docs.append({"metadata": {"domain": "web", "attention_influence": None}})
    stats = domain_statistics(docs)["web"]
    assert stats["documents"] == 10
    assert stats["spearman_score_loss"] == pytest.approx(-1.0, rel=FLOAT64_REL)
    assert stats["spearman_score_tokens"] == pytest.approx(1.0, rel=FLOAT64_REL)
    assert stats["ppl_overlap"] == 1.0
    assert "| web | 10 |" in format_table({"web": stats})
