"""markdown_table: the one writer of markdown tables."""

from __future__ import annotations

import pytest

from ai_filters.markdown import markdown_table


def test_table_with_default_and_given_alignment():
    rows = [["a", "1"], ["b", "22"]]
    assert markdown_table(["name", "n"], rows) == ("| name | n |\n|---|---|\n| a | 1 |\n| b | 22 |")
    assert markdown_table(["name", "n"], [["a|b", "1"]], align="lr") == (
        "| name | n |\n|---|---:|\n| a\\|b | 1 |"
    )
    assert markdown_table(["only"], []) == "| only |\n|---|"


def test_rows_and_alignment_must_fit_the_header():
    with pytest.raises(ValueError, match="a row has 1 cells for 2 columns"):
        markdown_table(["a", "b"], [["x"]])
    with pytest.raises(ValueError, match="align 'l' has 1 letters for 2 columns"):
        markdown_table(["a", "b"], [], align="l")
