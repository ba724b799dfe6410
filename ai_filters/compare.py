"""Compare selections that different scorers made of the same corpus (``ai-filters compare``).

Each selection is an output folder of ``pipelines/smollm_select.py``::

    SEL/scorer.json                     {"scorer": ..., "score_key": ..., "fraction": ...}
    SEL/scored/<domain>/*.jsonl.gz      every scored document, its score in metadata[score_key]
    SEL/selected/data/<domain>/*.parquet  the selected documents
    SEL/thresholds.json                 the per-domain thresholds

Without ``scorer.json`` (selections made before the pipeline had ``--scorer``) the score key is
``attention_influence`` and the default name is the folder's; the output says so.

Per domain, :func:`compare_selections` measures, in the spirit of the paper's Tables 3 and 4:

- the overlap of every pair of selections: Jaccard of the selected ids, with the sizes;
- the Spearman rank correlation of every pair of scorers over the documents both scored
  (joined by id; documents scored by only one side are counted);
- the token lengths (``ai_doc_tokens``, whole documents) of the selected versus all scored
  documents of each selection;
- the top and bottom documents of each scorer.

With ``only_ids`` (``ai-filters compare --only-ids``: a file of ids, or a distilled model
folder for its held-out ids), every statistic is computed on those documents alone: the
scored documents and the selected ids of each selection are restricted to them before
anything is measured. The selections themselves are unchanged (each kept its domain's top
fraction of the whole corpus), so the Jaccard then measures how the two selections agree on
those documents; ``compare.json`` and ``compare.md`` say what the comparison was restricted to.

:func:`write_comparison` writes ``compare.md``, ``compare.json`` and the figures
``jaccard.png``, ``spearman.png`` and ``tokens.png`` (one panel per domain). Every document id,
score and token count of a selection is held in memory; text is read again only for the
top and bottom documents.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from ai_filters.documents import read_documents
from ai_filters.layout import SelectionFolder, read_parquet_columns
from ai_filters.markdown import markdown_table
from ai_filters.report import spearman

SNIPPET_CHARS = 200
LABEL_BOX = {"facecolor": "white", "alpha": 0.7, "linewidth": 0}  # readable on any cell
FIGURES = {"jaccard": "jaccard.png", "spearman": "spearman.png", "tokens": "tokens.png"}


@dataclass(frozen=True)
class SelectionSpec:
    """One selection to compare: its name, folder and how its documents were scored."""

    name: str
    folder: Path
    scorer: str
    score_key: str
    fraction: float | None
    note: str | None = None  # set when scorer.json is absent and defaults were assumed


@dataclass
class DomainData:
    """The scored documents of one domain of one selection, and the ids it selected."""

    scores: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # scored file holding each id
    selected: set[str] = field(default_factory=set)


# --- reading -------------------------------------------------------------------------------------


def split_argument(argument: str) -> tuple[str | None, Path]:
    """``NAME=FOLDER`` -> (NAME, FOLDER); a bare folder (or a path with '/' before '=') -> (None,
    FOLDER)."""
    name, sep, folder = argument.partition("=")
    if sep and name and "/" not in name:
        return name, Path(folder)
    return None, Path(argument)


def load_spec(folder: Path, name: str | None = None) -> SelectionSpec:
    """Describe the selection in ``folder`` (``scorer.json``, else the documented fallback).

    Raises ``FileNotFoundError`` naming what is missing when ``folder`` is not a complete
    selection output, ``ValueError`` when ``scorer.json`` is malformed.
    """
    selection = SelectionFolder(folder)
    selection.require_complete()
    record = selection.read_scorer()
    if selection.has_scorer_record():
        return SelectionSpec(
            name or record.scorer, folder, record.scorer, record.score_key, record.fraction
        )
    return SelectionSpec(
        name or folder.resolve().name,
        folder,
        record.scorer,
        record.score_key,
        record.fraction,
        note=f"no scorer.json: score key '{record.score_key}' assumed"
        + ("" if name else ", named after the folder"),
    )


def resolve_specs(arguments: list[str]) -> list[SelectionSpec]:
    """The selections named by ``SEL`` arguments; at least two, with distinct names."""
    if len(arguments) < 2:
        raise ValueError(f"compare needs at least two selections, got {len(arguments)}")
    specs = [load_spec(folder, name) for name, folder in map(split_argument, arguments)]
    seen: dict[str, Path] = {}
    for spec in specs:
        if spec.name in seen:
            raise ValueError(
                f"two selections are named '{spec.name}' ({seen[spec.name]} and {spec.folder}): "
                "name each as NAME=FOLDER"
            )
        seen[spec.name] = spec.folder
    return specs


def _scored_entry(spec: SelectionSpec, document: dict, path: str) -> tuple[str, float, int]:
    """(id, score, tokens) of one scored document; ``ValueError`` naming the file if the score
    or the token count is missing."""
    metadata, document_id = document["metadata"], str(document["id"])
    score = metadata.get(spec.score_key)
    if score is None:
        raise ValueError(
            f"{path}: document {document_id} has no '{spec.score_key}' score "
            f"(the score key of selection '{spec.name}')"
        )
    tokens = metadata.get("ai_doc_tokens", metadata.get("ai_n_tokens"))
    if tokens is None:
        raise ValueError(f"{path}: document {document_id} has no 'ai_doc_tokens' in its metadata")
    return document_id, float(score), int(tokens)


def read_selection(spec: SelectionSpec, only_ids: set[str] | None = None) -> dict[str, DomainData]:
    """Scores, token counts and selected ids per domain (sorted by domain); with ``only_ids``,
    of those documents alone.

    Reading is strict (an unreadable line is an error). Raises ``ValueError`` when a scored
    document lacks the score key or an id appears twice in a domain (the join needs unique ids).
    """
    domains: dict[str, DomainData] = {}
    selection = SelectionFolder(spec.folder)
    for path in selection.scored_files():
        for document in read_documents(path, strict=True):
            document_id, score, tokens = _scored_entry(spec, document, path)
            if only_ids is not None and document_id not in only_ids:
                continue
            folder_domain = path.rsplit("/", 2)[-2]  # scored/<domain>/<rank>.jsonl.gz
            domain = str(document["metadata"].get("domain") or folder_domain)
            data = domains.setdefault(domain, DomainData())
            if document_id in data.scores:
                raise ValueError(f"{path}: id {document_id} appears twice in domain {domain}")
            data.scores[document_id], data.tokens[document_id] = score, tokens
            data.sources[document_id] = path
    for domain, paths in selection.selected_shards().items():
        for path in paths:
            ids = map(str, read_parquet_columns(path, ["id"]).column(0).to_pylist())
            if only_ids is not None:
                ids = (i for i in ids if i in only_ids)
            domains.setdefault(domain, DomainData()).selected.update(ids)
    if only_ids is not None:  # a domain none of the ids is in is not part of the comparison
        domains = {name: data for name, data in domains.items() if data.scores or data.selected}
    return dict(sorted(domains.items()))


def snippet(text: str, chars: int = SNIPPET_CHARS) -> str:
    """The first ``chars`` characters of ``text`` on one line (newlines, tabs escaped)."""
    head = text[:chars].replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return head.replace("\t", "\\t") + ("…" if len(text) > chars else "")


def read_snippets(data: DomainData, ids: Iterable[str]) -> dict[str, str]:
    """:func:`snippet` of the documents ``ids``, read again from their scored files."""
    wanted: dict[str, set[str]] = {}
    for document_id in ids:
        wanted.setdefault(data.sources[document_id], set()).add(document_id)
    found = {}
    for path, path_ids in wanted.items():
        for document in read_documents(path, strict=True):
            if str(document["id"]) in path_ids:
                found[str(document["id"])] = snippet(document["text"] or "")
    return found


# --- statistics ----------------------------------------------------------------------------------


def _finite(value: float) -> float | None:
    """``value``, or None for NaN (JSON has no NaN)."""
    return None if math.isnan(value) else value


def jaccard(a: set[str], b: set[str]) -> float:
    """``|a & b| / |a | b|``; NaN when both are empty."""
    union = len(a | b)
    return len(a & b) / union if union else float("nan")


def pair_statistics(a: DomainData, b: DomainData) -> dict:
    """Overlap of the selections and rank correlation of the scores of two selections."""
    joined = sorted(a.scores.keys() & b.scores.keys())
    return {
        "selected_a": len(a.selected),
        "selected_b": len(b.selected),
        "selected_both": len(a.selected & b.selected),
        "jaccard": _finite(jaccard(a.selected, b.selected)),
        "scored_both": len(joined),
        "scored_only_a": len(a.scores) - len(joined),
        "scored_only_b": len(b.scores) - len(joined),
        "spearman": _finite(spearman([a.scores[i] for i in joined], [b.scores[i] for i in joined])),
    }


def _lengths(tokens: list[int]) -> dict:
    if not tokens:
        return {"documents": 0, "tokens": 0, "mean_tokens": None, "median_tokens": None}
    return {
        "documents": len(tokens),
        "tokens": int(sum(tokens)),
        "mean_tokens": float(np.mean(tokens)),
        "median_tokens": float(np.median(tokens)),
    }


def length_statistics(data: DomainData) -> dict:
    """Token lengths of all scored documents and of the selected ones.

    ``selected_unscored`` counts selected ids absent from ``scored/`` (their length is unknown).
    """
    selected = [data.tokens[i] for i in sorted(data.selected) if i in data.tokens]
    every, chosen = _lengths(list(data.tokens.values())), _lengths(selected)
    return {
        "all": every,
        "selected": chosen,
        "token_share_selected": chosen["tokens"] / every["tokens"] if every["tokens"] else None,
        "selected_unscored": len(data.selected) - len(selected),
    }


def extremes(data: DomainData, count: int) -> tuple[list[str], list[str]]:
    """Ids of the ``count`` highest and ``count`` lowest scores (ties: by id)."""
    highest = sorted(data.scores, key=lambda i: (-data.scores[i], i))[:count]
    lowest = sorted(data.scores, key=lambda i: (data.scores[i], i))[:count]
    return highest, lowest


def example_rows(data: DomainData, count: int) -> dict[str, list[dict]]:
    """The top and bottom documents: id, score, tokens, selected or not, and a text snippet."""
    highest, lowest = extremes(data, count)
    texts = read_snippets(data, highest + lowest)

    def row(document_id: str) -> dict:
        return {
            "id": document_id,
            "score": data.scores[document_id],
            "tokens": data.tokens[document_id],
            "selected": document_id in data.selected,
            "text": texts[document_id],
        }

    return {"top": [row(i) for i in highest], "bottom": [row(i) for i in lowest]}


def compare_selections(
    specs: list[SelectionSpec],
    loaded: list[dict[str, DomainData]],
    examples: int = 3,
    restriction: dict | None = None,
) -> dict:
    """Everything ``compare.json`` holds (see the module docstring); NaN is stored as null.

    ``restriction`` (``{"source": ..., "ids": count}``) records the ids the selections were
    restricted to when read; ``None``: all documents."""
    domains = sorted({domain for selection in loaded for domain in selection})
    result: dict = {
        "only_ids": restriction,
        "selections": [
            {
                "name": spec.name,
                "folder": str(spec.folder),
                "scorer": spec.scorer,
                "score_key": spec.score_key,
                "fraction": spec.fraction,
                "note": spec.note,
            }
            for spec in specs
        ],
        "domains": {},
    }
    for domain in domains:
        data = {
            spec.name: sel.get(domain, DomainData())
            for spec, sel in zip(specs, loaded, strict=True)
        }
        result["domains"][domain] = {
            "pairs": [
                {"a": a, "b": b, **pair_statistics(data[a], data[b])}
                for a, b in combinations(data, 2)
            ],
            "lengths": {name: length_statistics(part) for name, part in data.items()},
            "examples": {name: example_rows(part, examples) for name, part in data.items()},
        }
    return result


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
        [s["name"], s["folder"], s["scorer"], s["score_key"]]
        + [_number(s["fraction"], "{:g}"), s["note"] or ""]
        for s in selections
    ]
    return _table(["name", "folder", "scorer", "score key", "fraction", "note"], rows)


def format_markdown(result: dict) -> str:
    """``compare.md``: the selections, then per domain overlaps, correlations, lengths and
    examples."""
    names = [s["name"] for s in result["selections"]]
    lines = ["# Comparison of selections", "", *_selections_table(result["selections"]), ""]
    if result.get("only_ids"):
        restriction = result["only_ids"]
        lines += [
            f"Restricted to the {restriction['ids']} documents whose ids are in "
            f"`{restriction['source']}`: every number below counts those documents alone "
            "(scored and selected); each selection kept its top fraction of the whole domain.",
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


# --- writing and command line --------------------------------------------------------------------


def write_comparison(
    specs: list[SelectionSpec], out: Path, examples: int = 3, only_ids: Path | None = None
) -> dict:
    """Read the selections (restricted to the ids of ``only_ids``, a file or a distilled model
    folder, when given), write ``compare.json``, ``compare.md`` and the figures into ``out``;
    return the comparison."""
    ids = restriction = None
    if only_ids is not None:
        from ai_filters.distill import read_ids

        ids = read_ids(only_ids)
        restriction = {"source": str(only_ids), "ids": len(ids)}
    loaded = [read_selection(spec, ids) for spec in specs]
    result = compare_selections(specs, loaded, examples, restriction)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    (out / "compare.md").write_text(format_markdown(result))
    plot_heatmaps(result, "jaccard", out / FIGURES["jaccard"])
    plot_heatmaps(result, "spearman", out / FIGURES["spearman"])
    names = [spec.name for spec in specs]
    plot_token_lengths(names, loaded, list(result["domains"]), out / FIGURES["tokens"])
    return result
