"""What ``ai-filters compare`` writes (:func:`write_comparison`): ``compare.json`` (the
comparison :mod:`ai_filters.selection.compare` computes), ``compare.md``
(:func:`format_markdown`) and the figures: heatmaps of the pairs' Jaccard and Spearman per
domain, box plots of the token lengths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ai_filters.markdown import markdown_table
from ai_filters.selection.compare import (
    FIGURES,
    DomainData,
    SelectionSpec,
    compare_selections,
    read_selection,
    select_among,
)

LABEL_BOX = {"facecolor": "white", "alpha": 0.7, "linewidth": 0}  # readable on any cell


# --- markdown ------------------------------------------------------------------------------------


def _number(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return markdown_table(header, rows).split("\n")


def _matrix(names: list[str], pairs: list[dict], key: str, fmt: str) -> list[str]:
    values = {(p["a"], p["b"]): p[key] for p in pairs} | {(p["b"], p["a"]): p[key] for p in pairs}
    rows = [
        [name] + ["—" if name == other else _number(values[name, other], fmt) for other in names]
        for name in names
    ]
    return _table([key] + names, rows)


def _pairs_table(pairs: list[dict]) -> list[str]:
    header = ["a", "b", "selected a", "selected b", "both", "Jaccard"]
    header += ["scored by both", "only a", "only b", "Spearman"]
    rows = [
        [p["a"], p["b"], str(p["selected_a"]), str(p["selected_b"]), str(p["selected_both"])]
        + [_number(p["jaccard"], "{:.3f}"), str(p["scored_both"])]
        + [str(p["scored_only_a"]), str(p["scored_only_b"]), _number(p["spearman"], "{:+.3f}")]
        for p in pairs
    ]
    return _table(header, rows)


def _lengths_table(lengths: dict[str, dict]) -> list[str]:
    header = ["selection", "scored", "selected", "mean tokens all", "mean tokens selected"]
    header += ["median all", "median selected", "token share selected"]
    rows = [
        [name, str(row["all"]["documents"]), str(row["selected"]["documents"])]
        + [_number(row["all"]["mean_tokens"], "{:.0f}")]
        + [_number(row["selected"]["mean_tokens"], "{:.0f}")]
        + [_number(row["all"]["median_tokens"], "{:.0f}")]
        + [_number(row["selected"]["median_tokens"], "{:.0f}")]
        + [_number(row["token_share_selected"], "{:.1%}")]
        for name, row in lengths.items()
    ]
    return _table(header, rows)


def _examples_table(examples: dict[str, list[dict]]) -> list[str]:
    rows = [
        [end, str(rank), row["id"], f"{row['score']:.4g}", str(row["tokens"])]
        + ["yes" if row["selected"] else "no", row["text"]]
        for end in ("top", "bottom")
        for rank, row in enumerate(examples[end], start=1)
    ]
    if not rows:
        return ["No document of this domain was scored."]
    return _table(["end", "rank", "id", "score", "tokens", "selected", "text"], rows)


def _selections_table(selections: list[dict]) -> list[str]:
    rows = [
        [s["name"], s["folder"], s["scorer"], s["score_key"], _number(s["fraction"], "{:g}")]
        for s in selections
    ]
    return _table(["name", "folder", "scorer", "score key", "fraction"], rows)


def _thresholds_table(thresholds: dict[str, dict[str, float]]) -> list[str]:
    domains = sorted({domain for part in thresholds.values() for domain in part})
    rows = [
        [name] + [_number(part.get(domain), "{:.4g}") for domain in domains]
        for name, part in thresholds.items()
    ]
    return _table(["threshold", *domains], rows)


def format_markdown(result: dict) -> str:
    """``compare.md``: the selections, then per domain overlaps, correlations, lengths and
    examples."""
    names = [s["name"] for s in result["selections"]]
    lines = ["# Comparison of selections", "", *_selections_table(result["selections"]), ""]
    if result.get("only_ids"):
        restriction = result["only_ids"]
        lines += [
            f"Restricted to the {restriction['ids']} documents whose ids are in "
            f"`{restriction['source']}`: every number below counts those documents alone, and "
            "each selection is made again among them: its top fraction of each domain's listed "
            "documents, the thresholds from them alone:",
            "",
            *_thresholds_table(restriction["thresholds"]),
            "",
        ]
    lines += [
        "Jaccard: selected ids in both / in either. Spearman: rank correlation of the two "
        "scores over the documents both scored (joined by id). Tokens: whole documents "
        "(`ai_doc_tokens`).",
        "",
        "Figures: " + ", ".join(f"[{name}]({name})" for name in FIGURES.values()),
    ]
    for domain, part in result["domains"].items():
        lines += ["", f"## {domain}", "", "### Overlap and rank correlation", ""]
        lines += _matrix(names, part["pairs"], "jaccard", "{:.3f}") + [""]
        lines += _matrix(names, part["pairs"], "spearman", "{:+.3f}") + [""]
        lines += _pairs_table(part["pairs"])
        lines += ["", "### Token lengths, selected vs all scored", ""]
        lines += _lengths_table(part["lengths"])
        for name, examples in part["examples"].items():
            lines += ["", f"### Top and bottom documents by {name}", ""]
            lines += _examples_table(examples)
    return "\n".join(lines) + "\n"


# --- figures -------------------------------------------------------------------------------------


def _panels(count: int, width: float, height: float):
    from matplotlib.figure import Figure

    columns = min(count, 2)
    rows = -(-count // columns)
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis in axes[count:]:
        axis.set_visible(False)
    return figure, axes


def plot_heatmaps(result: dict, key: str, path: Path) -> None:
    """One heatmap of ``key`` ("jaccard" or "spearman") per domain, values written in cells."""
    names = [s["name"] for s in result["selections"]]
    low = 0.0 if key == "jaccard" else -1.0
    figure, axes = _panels(len(result["domains"]), 1.2 * len(names) + 2.5, 1.0 * len(names) + 2)
    for axis, (domain, part) in zip(axes, result["domains"].items(), strict=False):
        present = [part["lengths"][name]["all"]["documents"] > 0 for name in names]
        matrix = np.diag([1.0 if here else np.nan for here in present])
        for pair in part["pairs"]:
            i, j = names.index(pair["a"]), names.index(pair["b"])
            matrix[i, j] = matrix[j, i] = np.nan if pair[key] is None else pair[key]
        image = axis.imshow(matrix, vmin=low, vmax=1.0, cmap="viridis" if low == 0 else "coolwarm")
        for (i, j), value in np.ndenumerate(matrix):
            label = "n/a" if np.isnan(value) else f"{value:.2f}"
            axis.text(j, i, label, ha="center", va="center", fontsize="small", bbox=LABEL_BOX)
        axis.set_xticks(range(len(names)), names, rotation=30, ha="right")
        axis.set_yticks(range(len(names)), names)
        axis.set_title(f"{domain}: {key}")
        figure.colorbar(image, ax=axis, shrink=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def plot_token_lengths(
    names: list[str], loaded: list[dict[str, DomainData]], domains: list[str], path: Path
) -> None:
    """Box plots per domain, a pair per selection: token lengths of all scored documents (grey)
    and of the selected ones (red), means marked, log scale."""
    figure, axes = _panels(len(domains), 1.3 * len(names) + 2.5, 3.8)
    groups = np.arange(len(names))
    for axis, domain in zip(axes, domains, strict=False):
        for offset, kind, color in ((-0.2, "all", "#b0b0b0"), (0.2, "selected", "#d62728")):
            boxes = [_box_values(selection.get(domain, DomainData()), kind) for selection in loaded]
            parts = axis.boxplot(
                boxes, positions=groups + offset, widths=0.35, patch_artist=True, showmeans=True
            )
            for patch in parts["boxes"]:
                patch.set_facecolor(color)
            parts["boxes"][0].set_label(kind)
        axis.set_xticks(groups, names, rotation=20, ha="right")
        axis.set_yscale("log")
        axis.set_ylabel("tokens per document")
        axis.set_title(domain)
        axis.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def _box_values(data: DomainData, kind: str) -> list[float]:
    """Token counts of all scored (``kind="all"``) or the selected documents; [nan] if none."""
    ids = data.tokens if kind == "all" else [i for i in data.selected if i in data.tokens]
    return [data.tokens[i] for i in ids] or [np.nan]


def write_comparison(
    specs: list[SelectionSpec],
    out: Path,
    examples: int = 3,
    only_ids: set[str] | None = None,
    ids_source: str = "",
) -> dict:
    """Read the selections (restricted to ``only_ids`` when given; ``ids_source`` says where
    those came from), write ``compare.json``, ``compare.md`` and the figures into ``out``;
    return the comparison."""
    restriction = None
    loaded = [read_selection(spec, only_ids) for spec in specs]
    if only_ids is not None:
        thresholds = {s.name: select_among(s, d) for s, d in zip(specs, loaded, strict=True)}
        restriction = {"source": ids_source, "ids": len(only_ids), "thresholds": thresholds}
    result = compare_selections(specs, loaded, examples, restriction)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    (out / "compare.md").write_text(format_markdown(result))
    plot_heatmaps(result, "jaccard", out / FIGURES["jaccard"])
    plot_heatmaps(result, "spearman", out / FIGURES["spearman"])
    names = [spec.name for spec in specs]
    plot_token_lengths(names, loaded, list(result["domains"]), out / FIGURES["tokens"])
    return result
