"""Reading what a distilled model learns from: a selection's scored documents and its scorer."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ai_filters.distill.groups import DEFAULT_GROUP_KEY, group_of
from ai_filters.documents import read_documents
from ai_filters.engine.heads_file import HeadsFileError
from ai_filters.selection.folder import SelectionFolder


@dataclass(frozen=True)
class ScoredDocument:
    """One scored document of a selection; ``group`` the source it shares with others
    (:func:`~ai_filters.distill.groups.group_of`), ``None``: its own group."""

    id: str
    domain: str
    text: str
    score: float
    group: str | None = None


@dataclass(frozen=True)
class Teacher:
    """What scored the documents: the selection's scorer record and its selector."""

    selection: str
    scorer: str
    score_key: str
    fraction: float
    selector_model: str | None
    heads_fingerprint: str | None
    heads: list[list[int]] | None


def read_teacher(folder: SelectionFolder) -> Teacher:
    """The scorer of a selection folder and, when it has a heads file, its selector."""
    record = folder.read_scorer()
    model = fingerprint = heads = None
    if folder.exists("heads.json"):
        try:
            retrieval = folder.read_heads()
        except HeadsFileError as error:
            raise ValueError(f"{folder.heads_file}: {error}") from None
        model, fingerprint, heads = (
            retrieval.model,
            retrieval.model_fingerprint,
            retrieval.selected,
        )
    return Teacher(
        folder.root, record.name, record.score_key, record.fraction, model, fingerprint, heads
    )


def read_scored(
    folder: SelectionFolder, score_key: str, group_key: str = DEFAULT_GROUP_KEY
) -> list[ScoredDocument]:
    """Every scored document of the selection (``OUT/scored/<domain>/*.jsonl.gz``), read
    strictly, with its group under ``group_key``.

    Raises ``ValueError`` naming the file when a document has no finite ``score_key``, no text
    or no domain, or when an id appears twice (the held-out split is by id).
    """
    files = folder.scored_files()
    if not files:
        raise ValueError(
            f"{folder.root} has no scored documents (scored/<domain>/*.jsonl.gz): run "
            "pipelines/smollm_select.py first"
        )
    documents, seen = [], set()
    for path in files:
        for document in read_documents(path, strict=True):
            documents.append(_scored(document, path, score_key, group_key))
            if documents[-1].id in seen:
                raise ValueError(f"{path}: id {documents[-1].id} appears twice")
            seen.add(documents[-1].id)
    return documents


def _scored(document: dict, path: str, score_key: str, group_key: str) -> ScoredDocument:
    metadata, document_id = document["metadata"], str(document["id"])
    score, domain = metadata.get(score_key), metadata.get("domain")
    if not isinstance(score, int | float) or not math.isfinite(score):
        raise ValueError(f"{path}: document {document_id} has no finite '{score_key}'")
    if not isinstance(document["text"], str) or not domain:
        raise ValueError(f"{path}: document {document_id} has no text or no domain")
    group = group_of(metadata, group_key)
    return ScoredDocument(document_id, str(domain), document["text"], float(score), group)
