"""The one markdown-table helper of reports, cards and comparisons."""

from __future__ import annotations

import pytest

from ai_filters.markdown import markdown_table


def test_alignment_row():
    table = markdown_table(["domain", "documents", "share"], [["web", "12", "30%"]], align="lrr")
    assert table.splitlines() == [
        "| domain | documents | share |",
        "|---|---:|---:|",
        "| web | 12 | 30% |",
    ]
    assert markdown_table(["a", "b"], []).splitlines()[1] == "|---|---|"  # left by default


def test_a_pipe_in_a_cell_cannot_split_the_row():
    table = markdown_table(["text", "n"], [["first | second", "1"]])
    assert table.splitlines()[2] == "| first \\| second | 1 |"
    assert markdown_table(["a|b"], [["x"]]).splitlines()[0] == "| a\\|b |"


def test_wrong_cell_count_is_an_error():
    with pytest.raises(ValueError, match="a row has 1 cells for 2 columns"):
        markdown_table(["a", "b"], [["1", "2"], ["3"]])
    with pytest.raises(ValueError, match="align 'l' has 1 letters for 2 columns"):
        markdown_table(["a", "b"], [["1", "2"]], align="l")
