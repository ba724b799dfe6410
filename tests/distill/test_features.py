"""What a distilled model sees of a text (ai_filters/distill/features.py)."""

from __future__ import annotations

import math

import pytest

from ai_filters.distill import STATISTICS, Features, text_statistics

PATTERN = Features().token_pattern


def test_text_statistics():
    values = text_statistics("a b a b\nx = 12", PATTERN)
    # 7 tokens a b a b x = 12; 5 distinct; bigrams ab ba ab bx x= =12: 5 of 6; 4-grams: 4 of 4
    expected = [math.log1p(14), math.log1p(7), 5 / 7, 5 / 6, 1.0, 5 / 14, 2 / 14, 1 / 14]
    assert values == pytest.approx(expected, abs=1e-12)  # ratios of small integers
    assert text_statistics("", PATTERN) == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert len(values) == len(STATISTICS)


def test_hashed_ngrams_keep_operators_and_ignore_case():
    vectorizer = Features(bits=10).vectorizer()
    same = vectorizer.transform(["x = y + 1", "X = Y + 1"])
    assert (same[0] != same[1]).nnz == 0
    differ = vectorizer.transform(["x = y + 1", "x = y - 1"])
    assert (differ[0] != differ[1]).nnz > 0  # '+' and '-' are tokens of their own
    assert Features(bits=10).count == 1024 + len(STATISTICS)
    assert Features(bits=10, statistics=False).count == 1024
