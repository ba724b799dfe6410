"""The scoring engine: AttentionInfluence of documents.

For a document of tokens x_1..x_n (the tokenizer's default encoding, nothing added):

    loss_base = mean_t CE(model(x_<t), x_t)                 t = 2..n
    loss_ref  = the same with the retrieval heads masked
    attention_influence = (loss_ref - loss_base) / loss_base

An engine built without heads computes ``loss_base`` only (the perplexity-filter baseline).

Documents longer than ``max_tokens`` are truncated, or, with ``windows=True``, cut into
consecutive windows of ``max_tokens`` tokens whose losses are averaged weighted by their number
of predicted tokens. A document with fewer than 2 tokens has no next-token loss: it gets no
score and the reason ``too_short``; a non-finite loss (for example an fp16 overflow) gets the
reason ``non_finite_loss``, a base loss of exactly 0 (no ratio exists) ``zero_base_loss``, and
text the tokenizer cannot encode (lone UTF-16 surrogates) ``untokenizable_text``.

How documents become batches is planned in :mod:`ai_filters.engine.batching` (length-sorted
rows under a padded-token budget; with ``packing`` several documents share a row, each attending
only to its own tokens, so a packed document's loss is its unpacked loss); how a batch is fed
and its loss computed, in :mod:`ai_filters.engine.forward` (plain and masked copies in one
pass, the layers below the first masked head shared, the loss in fp32 in chunks of rows).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

import torch

from ai_filters.engine.batching import (
    BatchPlan,
    FeedCounts,
    cut_segments,
    pack_rows,
    plan_batches,
)
from ai_filters.engine.compile import compile_layers
from ai_filters.engine.forward import ForwardPass
from ai_filters.engine.kernels import (
    ATTENTION_KERNELS,
    kernel_implementation,
    resolve_attention_kernel,
)
from ai_filters.engine.masking import MASK_MODES, UNIFORM, wrapped_attention
from ai_filters.engine.models import LoadedModel
from ai_filters.engine.startup_checks import check_engine_model
from ai_filters.fields import (
    DOCUMENT_TOKENS_KEY,
    LOSS_BASE_KEY,
    LOSS_REF_KEY,
    SCORE_KEY,
    SCORED_TOKENS_KEY,
    SKIP_BAD_TEXT,
    SKIP_NON_FINITE,
    SKIP_TOO_SHORT,
    SKIP_ZERO_LOSS,
)

Batch = TypeVar("Batch")
_END = object()


@dataclass(frozen=True)
class DocumentScore:
    """The score of one document, or the reason it has none (``skip_reason``).

    ``n_tokens`` counts the tokens scored (after truncation); ``document_tokens`` all tokens
    of the document's encoding (what a selection's token count is made of).
    """

    n_tokens: int
    document_tokens: int
    loss_base: float | None = None
    loss_ref: float | None = None
    skip_reason: str | None = None

    @property
    def attention_influence(self) -> float | None:
        """``(loss_ref - loss_base) / loss_base``; ``None`` when skipped or base loss only."""
        if self.skip_reason is not None or self.loss_ref is None:
            return None
        return (self.loss_ref - self.loss_base) / self.loss_base

    def as_metadata(self) -> dict:
        """The metadata fields written on a scored document (no reference fields without one)."""
        metadata = {
            SCORE_KEY: self.attention_influence,
            LOSS_BASE_KEY: self.loss_base,
            LOSS_REF_KEY: self.loss_ref,
            SCORED_TOKENS_KEY: self.n_tokens,
            DOCUMENT_TOKENS_KEY: self.document_tokens,
        }
        if self.loss_ref is None:
            del metadata[SCORE_KEY], metadata[LOSS_REF_KEY]
        return metadata


@dataclass(frozen=True)
class ScoringConfig:
    """How documents are cut, batched and fed. ``max_tokens`` is the longest sequence scored;
    ``None`` picks ``min(4096, the model's context)``.

    ``batch_tokens`` bounds the padded tokens of one batch (one long document may exceed it;
    the forward pass then holds twice as many rows: plain and masked). ``None`` picks by
    device: on a CPU ``max(max_tokens, 1024)``, where bigger batches measured no faster and
    only cost memory; on a GPU 32,768.

    A row joins a batch only when it fills at least ``min_row_fill`` of the batch's width
    (the longest row's), so padding stays under ``1 - min_row_fill`` of every row.

    ``packing`` puts several documents in one row of up to ``pack_tokens`` tokens (default
    ``max_tokens``) instead of one per row; ``None`` picks by device: off on a CPU (the
    block-diagonal mask costs more there than the padding it saves), on on a GPU.
    ``compile`` runs the decoder layers through ``torch.compile``. ``attention_kernel`` (one of
    :data:`~ai_filters.engine.kernels.ATTENTION_KERNELS`) is resolved by the engine (see
    :mod:`ai_filters.engine.kernels`): ``auto`` is ``flex`` for packed rows on CUDA, ``sdpa``
    otherwise.
    ``allow_unsupported_architecture`` scores a model the engine does not list as exact
    (:mod:`ai_filters.engine.architectures`) instead of refusing it.
    """

    max_tokens: int | None = None
    batch_size: int = 64
    batch_tokens: int | None = None
    windows: bool = False
    mask_mode: str = UNIFORM
    loss_chunk_rows: int = 1024
    min_row_fill: float = 0.9
    packing: bool | None = None
    pack_tokens: int | None = None
    compile: bool = False
    allow_unsupported_architecture: bool = False
    attention_kernel: str = "auto"

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 2:
            raise ValueError("max_tokens must be at least 2")
        if self.batch_size < 1 or (self.batch_tokens is not None and self.batch_tokens < 1):
            raise ValueError("batch_size and batch_tokens must be positive")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"mask mode must be one of {', '.join(MASK_MODES)}")
        if not 0 <= self.min_row_fill <= 1:
            raise ValueError("min_row_fill must be between 0 and 1")
        if self.pack_tokens is not None and self.pack_tokens < (self.max_tokens or 2):
            raise ValueError("pack_tokens must be at least max_tokens")
        if self.attention_kernel not in ATTENTION_KERNELS:
            raise ValueError(f"attention kernel must be one of {', '.join(ATTENTION_KERNELS)}")


class ScoringEngine:
    """Scores documents with one loaded model and a list of heads to mask.

    With no heads, only the base loss is computed (``loss_ref`` is ``None``): the perplexity
    filter's score at half the cost. Refuses, in one line, a model the engine does not score
    exactly (see :mod:`ai_filters.engine.architectures`) unless the config accepts the risk. Not
    thread-safe: masking edits the shared model's attention while a batch runs.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        heads: Sequence[Sequence[int]],
        config: ScoringConfig | None = None,
    ) -> None:
        self.loaded = loaded
        self.heads = [tuple(head) for head in heads]
        config = config or ScoringConfig()
        if config.max_tokens is None:
            config = replace(config, max_tokens=min(4096, loaded.max_context))
        if config.pack_tokens is not None and config.pack_tokens < config.max_tokens:
            raise ValueError("pack_tokens must be at least max_tokens")
        on_cpu = loaded.device.type == "cpu"
        if config.batch_tokens is None:
            config = replace(config, batch_tokens=max(config.max_tokens, 1024) if on_cpu else 32768)
        if config.packing is None:
            config = replace(config, packing=not on_cpu)
        kernel = resolve_attention_kernel(
            config.attention_kernel, loaded.model, loaded.device, config.packing
        )
        self.config = config = replace(config, attention_kernel=kernel)
        check_engine_model(loaded.model, self.heads, config)
        self.forward = ForwardPass(loaded, self.heads, config.mask_mode, config.loss_chunk_rows)
        if config.compile:
            compile_layers(loaded.model)

    # ------------------------------------------------------------------------ tokenizing
    def tokenize(self, text: str) -> list[int] | None:
        """The tokenizer's default encoding of ``text`` (its own special tokens, if any).

        ``None`` when the tokenizer cannot encode the text (lone UTF-16 surrogates, say).
        """
        try:
            return self.loaded.tokenizer(text).input_ids
        except (TypeError, ValueError, UnicodeError):
            return None

    def tokenize_many(self, texts: Sequence[str]) -> list[list[int] | None]:
        """:meth:`tokenize` of every text, in one batched tokenizer call when all encode."""
        if not texts:
            return []
        try:
            return list(self.loaded.tokenizer(list(texts)).input_ids)
        except (TypeError, ValueError, UnicodeError):
            return [self.tokenize(text) for text in texts]

    # --------------------------------------------------------------------------- scoring
    def score_texts(
        self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None
    ) -> list[DocumentScore]:
        """Scores of ``texts``, in input order; text the tokenizer rejects gets a reason."""
        return self._score_encoded(self.tokenize_many(texts), progress)

    def score_batches(
        self,
        batches: Iterable[Batch],
        texts: Callable[[Batch], Sequence[str]] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[tuple[Batch, list[DocumentScore]]]:
        """Each batch with the scores of its texts (``texts(batch)``; default: the batch is a
        sequence of texts), in order, as :meth:`score_texts` gives them.

        A background thread takes the next batch from ``batches`` (reading it, when the
        iterable reads documents) and tokenizes it while the model scores the current one, so
        reading and tokenizing leave the critical path: the tokenizer and torch both release
        the GIL. Only that thread ever advances ``batches``.
        """
        source = iter(batches)
        texts_of = texts or (lambda batch: batch)

        def next_encoded() -> tuple[Batch, list[list[int] | None]] | None:
            batch = next(source, _END)
            return None if batch is _END else (batch, self.tokenize_many(texts_of(batch)))

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as pool:
            pending = pool.submit(next_encoded)
            while (ready := pending.result()) is not None:
                pending = pool.submit(next_encoded)
                yield ready[0], self._score_encoded(ready[1], progress)

    def _score_encoded(
        self,
        encoded: Sequence[list[int] | None],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[DocumentScore]:
        scores = iter(self.score_token_ids([ids for ids in encoded if ids is not None], progress))
        return [
            next(scores) if ids is not None else DocumentScore(0, 0, skip_reason=SKIP_BAD_TEXT)
            for ids in encoded
        ]

    def score_token_ids(
        self, documents: Sequence[Sequence[int]], progress: Callable[[int, int], None] | None = None
    ) -> list[DocumentScore]:
        """Scores of tokenized documents, in input order.

        ``progress(documents_done, tokens_done)`` is called after every batch with the
        increments of that batch (a document counts when its last segment is done).
        """
        batches, n_tokens = self.plan(documents)
        sums = torch.zeros(len(documents), 2 if self.heads else 1, dtype=torch.float64)
        counts = torch.zeros(len(documents), dtype=torch.float64)
        remaining = [0] * len(documents)
        for segment in (segment for batch in batches for row in batch for segment in row):
            remaining[segment.document] += 1
        kernel = kernel_implementation(self.config.attention_kernel)
        with wrapped_attention(self.loaded.model, kernel):
            for batch in batches:
                flat = [segment for row in batch for segment in row]
                started = time.perf_counter()
                batch_sums, batch_counts = self.forward.losses(batch)  # ends on the CPU
                self.feed.model_seconds += time.perf_counter() - started
                finished = 0
                for index, segment in enumerate(flat):
                    sums[segment.document] += batch_sums[index]
                    counts[segment.document] += batch_counts[index]
                    remaining[segment.document] -= 1
                    finished += remaining[segment.document] == 0
                if progress is not None:
                    progress(finished, sum(len(segment.ids) for segment in flat))
        if progress is not None:
            progress(sum(1 for ids in documents if len(ids) < 2), 0)
        return [
            self._document_score(n_tokens[i], len(ids), sums[i], counts[i])
            for i, ids in enumerate(documents)
        ]

    @property
    def feed(self) -> FeedCounts:
        """What the engine fed the model so far (tokens, padding, seconds)."""
        return self.forward.feed

    def plan(self, documents: Sequence[Sequence[int]]) -> tuple[list[BatchPlan], list[int]]:
        """The batches ``documents`` are fed in (:mod:`ai_filters.engine.batching`) and, per
        document, the number of tokens scored."""
        config = self.config
        segments, n_tokens = cut_segments(documents, config.max_tokens, config.windows)
        capacity = (config.pack_tokens or config.max_tokens) if config.packing else None
        rows = pack_rows(segments, capacity)
        return plan_batches(
            rows, config.batch_size, config.batch_tokens, config.min_row_fill
        ), n_tokens

    @staticmethod
    def _document_score(
        n_tokens: int, document_tokens: int, sums: torch.Tensor, count: torch.Tensor
    ) -> DocumentScore:
        if count.item() == 0:
            return DocumentScore(n_tokens, document_tokens, skip_reason=SKIP_TOO_SHORT)
        losses = (sums / count).tolist()
        loss_base, loss_ref = losses[0], (losses[1] if len(losses) > 1 else None)
        if not all(math.isfinite(loss) for loss in losses):
            return DocumentScore(n_tokens, document_tokens, skip_reason=SKIP_NON_FINITE)
        if loss_base == 0:
            return DocumentScore(n_tokens, document_tokens, skip_reason=SKIP_ZERO_LOSS)
        return DocumentScore(n_tokens, document_tokens, loss_base, loss_ref)
