"""The per-domain threshold rule, ties included."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ai_filters.layout import write_thresholds
from ai_filters.selection import compute_thresholds, top_fraction_threshold


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
