"""The distilled scorer: a fast text model trained on a selection's scores (``ai-filters
distill``), applied at CPU speed."""

from __future__ import annotations

from functools import cached_property

from datatrove.data import Document
from datatrove.pipeline.writers.disk_base import DiskWriter

from ai_filters.blocks.scorer_base import ScorerBlock, unscorable
from ai_filters.distill import DistilledModel, check_folder, load_model
from ai_filters.engine.models import DEFAULT_MODEL, load_tokenizer
from ai_filters.fields import (
    DISTILLED_SCORE_KEY,
    DOCUMENT_TOKENS_KEY,
    SKIP_BAD_TEXT,
    SKIP_TOO_SHORT,
)

POOLED_STAT = "scored_by_pooled_model"  # documents of a domain the model has no own model for


class DistilledScorer(ScorerBlock):
    """Scores documents with a distilled model: ``distilled_score``, higher is kept.

    ``model_dir`` is a folder written by ``ai-filters distill`` (a path every task can read).
    A document is scored by the model of its ``metadata["domain"]``, or by the pooled model
    when the model has none for it (counted as ``scored_by_pooled_model``).
    The model is loaded lazily, in the task, like datatrove's ``FastTextClassifierFilter``;
    documents are scored ``batch_size`` at a time. Like the random scorer, the block writes
    ``ai_doc_tokens`` (the tokenizer of ``tokenizer_model``, by default the selector the model
    was distilled from; no weights are loaded) and skips exactly the documents the model
    scorers skip: fewer than 2 tokens, text the tokenizer rejects, text that is not a string.
    """

    _requires_dependencies = [("sklearn", "scikit-learn"), "transformers"]

    name = "🧪 distilled scorer"
    type = "📊 - SCORER"
    score_key = DISTILLED_SCORE_KEY

    def __init__(
        self,
        model_dir: str,
        tokenizer_model: str | None = None,
        batch_size: int = 256,
        exclusion_writer: DiskWriter | None = None,
    ) -> None:
        super().__init__(exclusion_writer, batch_size=batch_size)
        record = check_folder(model_dir)  # a bad folder fails here, before any task starts
        self.model_dir = model_dir
        self.tokenizer_model = (
            tokenizer_model or record["trained_on"].get("selector_model") or DEFAULT_MODEL
        )
        self._model: DistilledModel | None = None

    @property
    def model(self) -> DistilledModel:
        """The distilled model, loaded on first use."""
        if self._model is None:
            self._model = load_model(self.model_dir)
        return self._model

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.tokenizer_model)

    def __getstate__(self) -> dict:
        """Copies and pickles of the block carry neither the model nor the tokenizer."""
        state = dict(self.__dict__, _model=None)
        state.pop("tokenizer", None)
        return state

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        """Count the tokens of the batch, skip what cannot be scored, score the rest in one
        call; ``True`` or ``(False, reason)`` per document."""
        results: list[bool | tuple[bool, str] | None] = [None] * len(batch)
        counts = self._token_counts([doc for doc in batch if unscorable(doc) is None])
        scorable: list[tuple[int, int]] = []
        for index, doc in enumerate(batch):
            reason = unscorable(doc) or _count_reason(counts.get(id(doc)))
            if reason:
                results[index] = self.skip(doc, reason)
            else:
                scorable.append((index, counts[id(doc)]))
        documents = [batch[index] for index, _ in scorable]
        domains = [doc.metadata.get("domain") for doc in documents]
        scores = self.model.predict([doc.text for doc in documents], domains)
        for (index, tokens), value in zip(scorable, scores, strict=True):
            results[index] = self._annotate(batch[index], float(value), tokens)
        return results

    def _token_counts(self, documents: list[Document]) -> dict[int, int | None]:
        """Tokens of each document's text by ``id(doc)``; ``None`` for text the tokenizer
        rejects. One batched call, and one call per document if the batch fails."""
        if not documents:
            return {}
        try:
            encoded = self.tokenizer([doc.text for doc in documents]).input_ids
            return {id(doc): len(ids) for doc, ids in zip(documents, encoded, strict=True)}
        except (TypeError, ValueError, UnicodeError):
            return {id(doc): self._token_count(doc.text) for doc in documents}

    def _token_count(self, text: str) -> int | None:
        try:
            return len(self.tokenizer(text).input_ids)
        except (TypeError, ValueError, UnicodeError):
            return None

    def _annotate(self, doc: Document, value: float, tokens: int) -> bool:
        if doc.metadata.get("domain") not in self.model.own_domains:
            self.stat_update(POOLED_STAT)
        doc.metadata[self.score_key] = value
        doc.metadata[DOCUMENT_TOKENS_KEY] = tokens
        self.stat_update("tokens_scored", value=tokens)
        self.stat_update(self.score_key, value=value)
        return True


def _count_reason(tokens: int | None) -> str | None:
    """Why a document with ``tokens`` tokens (``None``: rejected text) cannot be scored."""
    if tokens is None:
        return SKIP_BAD_TEXT
    return SKIP_TOO_SHORT if tokens < 2 else None
