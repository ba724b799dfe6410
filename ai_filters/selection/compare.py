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
scored documents of each selection are restricted to them, and each selection is made again
among them (:func:`select_among`): per domain its top fraction (its ``scorer.json``'s) of the
listed documents by its own score, the threshold computed from those documents alone, by the
pipeline's rule (ties kept). The pipeline's own selection is not used: its thresholds come from
the whole corpus, mostly documents a distilled model trained on. ``compare.json`` and
``compare.md`` say what the comparison was restricted to and the thresholds.

:func:`ai_filters.selection.compare_output.write_comparison` writes ``compare.md``,
``compare.json`` and the figures
``jaccard.png``, ``spearman.png`` and ``tokens.png`` (one panel per domain). Every document id,
score and token count of a selection is held in memory; text is read again only for the
top and bottom documents.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from ai_filters.documents import read_documents
from ai_filters.fields import DOCUMENT_TOKENS_KEY, SCORED_TOKENS_KEY
from ai_filters.selection.folder import SelectionFolder, read_parquet_columns
from ai_filters.selection.report import spearman
from ai_filters.selection.thresholds import top_fraction_threshold

SNIPPET_CHARS = 200
FIGURES = {"jaccard": "jaccard.png", "spearman": "spearman.png", "tokens": "tokens.png"}


@dataclass(frozen=True)
class SelectionSpec:
    """One selection to compare: its name, folder and how its documents were scored."""

    name: str
    folder: Path
    scorer: str
    score_key: str
    fraction: float | None


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
    """Describe the selection in ``folder`` (from its ``scorer.json``).

    Raises ``FileNotFoundError`` naming what is missing when ``folder`` is not a complete
    selection output, ``ValueError`` when ``scorer.json`` is malformed.
    """
    selection = SelectionFolder(folder)
    selection.require_complete()
    record = selection.read_scorer()
    return SelectionSpec(
        name or record.name, folder, record.name, record.score_key, record.fraction
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
    tokens = metadata.get(DOCUMENT_TOKENS_KEY, metadata.get(SCORED_TOKENS_KEY))
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


def select_among(spec: SelectionSpec, domains: dict[str, DomainData]) -> dict[str, float]:
    """Make the selection again among the documents read (``only_ids``): per domain, replace
    the selected ids by the top ``spec.fraction`` of the scored ones by their score, the
    threshold from them alone (the pipeline's rule, ties kept). Returns the thresholds."""
    thresholds = {}
    for domain, data in domains.items():
        ids = list(data.scores)
        if not ids:
            data.selected = set()
            continue
        scores = np.array([data.scores[i] for i in ids])
        tokens = np.array([data.tokens[i] for i in ids])
        threshold = top_fraction_threshold(scores, tokens, spec.fraction).threshold
        thresholds[domain] = threshold
        data.selected = {i for i, score in zip(ids, scores, strict=True) if score >= threshold}
    return thresholds


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

    ``restriction`` (``{"source": ..., "ids": count, "thresholds": {name: {domain: ...}}}``)
    records the ids the selections were restricted to and made again among; ``None``: all
    documents."""
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
