"""The random-subset control: a seeded hash of the document id as its score."""

from __future__ import annotations

from functools import cached_property

from datatrove.data import Document
from datatrove.pipeline.writers.disk_base import DiskWriter

from ai_filters.blocks.scorer_base import ScorerBlock, unscorable
from ai_filters.engine.models import DEFAULT_MODEL, load_tokenizer
from ai_filters.fields import (
    DOCUMENT_TOKENS_KEY,
    RANDOM_SCORE_KEY,
    SKIP_BAD_TEXT,
    SKIP_TOO_SHORT,
    id_hash,
)


class RandomScorer(ScorerBlock):
    """The random-subset control: ``random_score`` uniform in [0, 1) from (``seed``, doc id).

    The score depends only on the seed and the document's id, never on sharding or order, so
    a rerun selects the same documents. It also writes ``ai_doc_tokens`` (the tokenizer of
    ``model``, no weights loaded) so that selections can be compared and matched by tokens, and
    skips exactly the documents the model scorers skip (fewer than 2 tokens, text the tokenizer
    rejects, text that is not a string).
    """

    _requires_dependencies = ["transformers"]

    name = "🎲 random scorer"
    type = "📊 - SCORER"
    score_key = RANDOM_SCORE_KEY

    def __init__(
        self,
        seed: int = 0,
        model: str = DEFAULT_MODEL,
        batch_size: int = 256,
        exclusion_writer: DiskWriter | None = None,
    ) -> None:
        super().__init__(exclusion_writer, batch_size=batch_size)
        self.seed = seed
        self.model = model

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.model)

    def __getstate__(self) -> dict:
        """Copies and pickles of the block never carry a loaded tokenizer."""
        state = dict(self.__dict__)
        state.pop("tokenizer", None)
        return state

    def random_score(self, document_id: str) -> float:
        """Uniform in [0, 1), a pure function of (seed, ``document_id``)."""
        return id_hash(document_id, salt=str(self.seed))

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if unscorable(doc) is not None:
            return self.skip(doc)
        try:
            tokens = len(self.tokenizer(doc.text).input_ids)
        except (TypeError, ValueError, UnicodeError):
            return self.skip(doc, SKIP_BAD_TEXT)
        if tokens < 2:
            return self.skip(doc, SKIP_TOO_SHORT)
        value = self.random_score(str(doc.id))
        doc.metadata[self.score_key] = value
        doc.metadata[DOCUMENT_TOKENS_KEY] = tokens
        self.stat_update("tokens_scored", value=tokens)
        self.stat_update(self.score_key, value=value)
        return True
