"""Agreement of a distilled model with its teacher (ai_filters/distill/agreement.py)."""

from __future__ import annotations

import pytest

from ai_filters.distill import agreement


def test_agreement_counts_the_selections():
    domains = ["a"] * 10 + ["b"] * 5
    teacher = list(range(10)) + [1, 2, 3, 4, 5]
    student = [0, 1, 2, 3, 4, 5, 6, 7, 20, 8] + [5, 4, 3, 2, 1]
    measured = agreement(domains, teacher, student, 0.2)
    a, b = measured["domains"]["a"], measured["domains"]["b"]
    # a: top 2 by teacher {8, 9}, by student {8, 9} (20 and 8): the same; b: top 1 each, apart
    assert (a["selected_both"], a["jaccard"], b["selected_both"], b["jaccard"]) == (2, 1.0, 0, 0.0)
    assert measured["jaccard"] == 2 / 4  # both: 2 of the union {a8, a9, b4, b0}
    assert b["spearman"] == pytest.approx(-1.0, abs=1e-12)  # reversed order exactly
    assert a["chance_jaccard"] == pytest.approx(0.2 / 1.8, abs=1e-12)  # 2 of 10 selected


def test_ties_at_the_threshold_are_all_kept():
    measured = agreement(["a"] * 5, [5, 4, 4, 1, 0], [1, 1, 1, 1, 1], 0.2)
    row = measured["domains"]["a"]
    # the teacher keeps 1, the constant student all 5 (ties kept); no Spearman for a constant
    assert (row["selected_teacher"], row["selected_student"], row["jaccard"]) == (1, 5, 1 / 5)
    assert row["spearman"] is None and measured["mean_spearman"] is None
