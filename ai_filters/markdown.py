"""Markdown tables, the one way every report, card and comparison of the project writes them."""

from __future__ import annotations


def markdown_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A GitHub-flavoured markdown table of ``rows`` (cells already formatted as text).

    ``align`` holds one letter per column, ``l`` or ``r`` (default: every column left); a
    ``|`` inside a cell is escaped so that it cannot split the row.
    """
    if align is not None and len(align) != len(header):
        raise ValueError(f"align '{align}' has {len(align)} letters for {len(header)} columns")
    rules = {"l": "---", "r": "---:"}
    separator = [rules[letter] for letter in (align or "l" * len(header))]
    lines = [_row(header), "|" + "|".join(separator) + "|"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells for {len(header)} columns: {row}")
        lines.append(_row(row))
    return "\n".join(lines)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"
