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

Batches are formed over length-sorted rows under a padded-token budget and padded on the
right. Attention is causal, so no real position ever sees a padding position: padding never
changes a score, and batches are fed without an attention mask (the causal fast path). With
``packing``, several documents share a row, each with its own positions from 0, and
transformers then restricts attention to each document's own tokens (a block-diagonal causal
mask): a packed document's loss is its unpacked loss.

One model serves both losses: each batch is fed once with its plain and its masked copy
stacked, and the layers below the first masked head run only once (:func:`shared_prefix`).
The loss is computed from the final hidden states in chunks of rows, through the model's own
output processing (:class:`ai_filters.engine.architectures.OutputHead`), with the output layer and
the cross-entropy in fp32 whatever the model's dtype: the full ``[batch, seq, vocab]`` logits
are never materialised.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import TypeVar

import torch
import torch.nn.functional as F

from ai_filters.engine.architectures import OutputHead
from ai_filters.engine.kernels import (
    ATTENTION_KERNELS,
    compile_layers,
    first_block_rows,
    is_block_mask,
    kernel_implementation,
    resolve_attention_kernel,
)
from ai_filters.engine.masking import (
    MASK_MODES,
    AttentionPlan,
    MaskingError,
    check_plans_ran,
    masked_heads,
    wrapped_attention,
)
from ai_filters.engine.models import LoadedModel
from ai_filters.engine.startup_checks import check_engine_model

# Why a document has no score. Every part of the project that skips a document uses these.
SKIP_TOO_SHORT = "too_short"  # fewer than 2 tokens: nothing to predict
SKIP_NON_FINITE = "non_finite_loss"  # a NaN or infinite loss (an fp16 overflow, say)
SKIP_ZERO_LOSS = "zero_base_loss"  # a base loss of exactly 0: no ratio exists
SKIP_BAD_TEXT = "untokenizable_text"  # the tokenizer rejects the text (lone surrogates)
SKIP_NO_TEXT = "missing_text"  # the record's text is missing, null or not a string
SKIP_UNREADABLE = "unreadable"  # the line or file could not be parsed at all
SKIP_REASONS = (
    SKIP_TOO_SHORT,
    SKIP_NON_FINITE,
    SKIP_ZERO_LOSS,
    SKIP_BAD_TEXT,
    SKIP_NO_TEXT,
    SKIP_UNREADABLE,
)
SCORE_KEY = "attention_influence"  # the metadata field of the method's score
Batch = TypeVar("Batch")
_END = object()
METADATA_KEYS = (
    "attention_influence",
    "ai_loss_base",
    "ai_loss_ref",
    "ai_n_tokens",
    "ai_doc_tokens",
)


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
            "attention_influence": self.attention_influence,
            "ai_loss_base": self.loss_base,
            "ai_loss_ref": self.loss_ref,
            "ai_n_tokens": self.n_tokens,
            "ai_doc_tokens": self.document_tokens,
        }
        if self.loss_ref is None:
            del metadata["attention_influence"], metadata["ai_loss_ref"]
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
    mask_mode: str = "uniform"
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


@dataclass
class _Segment:
    document: int
    ids: list[int]


@dataclass
class FeedCounts:
    """Token positions fed to the model (one copy of each batch), how many were real, and the
    seconds spent in the model (forward passes and losses, up to the results on the CPU)."""

    real: int = 0
    fed: int = 0
    model_seconds: float = 0.0

    @property
    def padding_share(self) -> float:
        """The share of fed positions that were padding (0 when nothing was fed)."""
        return (self.fed - self.real) / self.fed if self.fed else 0.0


@dataclass
class _Batch:
    """A batch as tensors: ``input_ids`` ``[rows, width]``, ``position_ids`` (``None`` unless a
    row holds several documents), and the predicting positions with their targets and the
    index of their segment in the batch."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor | None
    predicting: tuple[torch.Tensor, torch.Tensor]
    targets: torch.Tensor
    owner: torch.Tensor
    counts: torch.Tensor
    real_tokens: int = field(default=0)


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
        self.feed = FeedCounts()
        self.output_head = OutputHead(loaded.model, torch.float32)
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
        segments, n_tokens = self._segments(documents)
        sums = torch.zeros(len(documents), 2 if self.heads else 1, dtype=torch.float64)
        counts = torch.zeros(len(documents), dtype=torch.float64)
        remaining = [0] * len(documents)
        for segment in segments:
            remaining[segment.document] += 1
        kernel = kernel_implementation(self.config.attention_kernel)
        with wrapped_attention(self.loaded.model, kernel):
            for batch in self._batches(self._rows(segments)):
                flat = [segment for row in batch for segment in row]
                started = time.perf_counter()
                batch_sums, batch_counts = self._batch_losses(batch)  # ends on the CPU
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

    # ---------------------------------------------------------------------------- internals
    def _segments(self, documents: Sequence[Sequence[int]]) -> tuple[list[_Segment], list[int]]:
        """Cut every document into the sequences that are fed (windows or one truncation)."""
        limit = self.config.max_tokens
        segments: list[_Segment] = []
        n_tokens: list[int] = []
        for index, ids in enumerate(documents):
            ids = list(ids)
            if not self.config.windows:
                ids = ids[:limit]
            n_tokens.append(len(ids))
            for start in range(0, len(ids), limit):
                window = ids[start : start + limit]
                if len(window) >= 2:
                    segments.append(_Segment(index, window))
        return segments, n_tokens

    def _rows(self, segments: list[_Segment]) -> list[list[_Segment]]:
        """The rows fed: one segment each, or with ``packing`` the segments placed longest
        first into the first row with room for them (rows of up to ``pack_tokens``)."""
        ordered = sorted(segments, key=lambda segment: -len(segment.ids))
        if not self.config.packing:
            return [[segment] for segment in ordered]
        capacity = self.config.pack_tokens or self.config.max_tokens
        rows: list[list[_Segment]] = []
        room: list[int] = []
        for segment in ordered:
            length = len(segment.ids)
            target = next((i for i, free in enumerate(room) if free >= length), None)
            if target is None:
                rows.append([segment])
                room.append(capacity - length)
            else:
                rows[target].append(segment)
                room[target] -= length
        return rows

    def _batches(self, rows: list[list[_Segment]]) -> list[list[list[_Segment]]]:
        """Longest first; a batch holds at most ``batch_size`` rows and ``batch_tokens`` padded,
        and rows of at least ``min_row_fill`` of its width."""

        def width(row: list[_Segment]) -> int:
            return sum(len(segment.ids) for segment in row)

        config = self.config
        batches: list[list[list[_Segment]]] = []
        for row in sorted(rows, key=lambda row: -width(row)):
            if batches:
                batch = batches[-1]
                widest = width(batch[0])
                if (
                    len(batch) < config.batch_size
                    and (len(batch) + 1) * widest <= config.batch_tokens
                    and width(row) >= config.min_row_fill * widest
                ):
                    batch.append(row)
                    continue
            batches.append([row])
        return batches

    def _tensors(self, batch: list[list[_Segment]]) -> _Batch:
        """The batch's input ids (right-padded), positions, and predicting positions."""
        lengths = [[len(segment.ids) for segment in row] for row in batch]
        width = max(sum(row) for row in lengths)
        pad = getattr(self.loaded.tokenizer, "pad_token_id", None) or 0
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        positions = torch.zeros((len(batch), width), dtype=torch.long)
        rows, columns, owners, counts = [], [], [], []
        for row, segments in enumerate(batch):
            start = 0
            for segment in segments:
                length = len(segment.ids)
                input_ids[row, start : start + length] = torch.tensor(segment.ids)
                positions[row, start : start + length] = torch.arange(length)
                rows.append(torch.full((length - 1,), row))
                columns.append(torch.arange(start, start + length - 1))
                owners.append(torch.full((length - 1,), len(counts)))
                counts.append(length - 1)
                start += length
            # padding continues the last document's positions: causal attention hides it
            positions[row, start:] = torch.arange(width - start) + positions[row, start - 1] + 1
        row_index, column_index = torch.cat(rows), torch.cat(columns)
        packed = any(len(segments) > 1 for segments in batch)
        return _Batch(
            input_ids=input_ids,
            position_ids=positions if packed else None,
            predicting=(row_index, column_index),
            targets=input_ids[row_index, column_index + 1],
            owner=torch.cat(owners),
            counts=torch.tensor(counts, dtype=torch.float64),
            real_tokens=sum(map(sum, lengths)),
        )

    def _batch_losses(self, rows: list[list[_Segment]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per segment of the batch's rows, in row order: ``[sum CE base, sum CE ref]``
        (float64; base only without heads) and the number of predicted tokens.

        With heads, the batch is fed twice in one forward pass, plain rows then masked rows;
        the layers below the first masked one run once, on the plain rows, and are copied to
        both.
        """
        tensors = self._tensors(rows)
        self.feed.real += tensors.real_tokens
        self.feed.fed += tensors.input_ids.numel()
        copies = 2 if self.heads else 1
        device = self.loaded.device
        fed_ids = tensors.input_ids.repeat(copies, 1).to(device)
        positions = tensors.position_ids
        fed_positions = None if positions is None else positions.repeat(copies, 1).to(device)
        with torch.inference_mode(), self._reference_rows(len(rows)) as plans:
            hidden = self.loaded.model.base_model(
                input_ids=fed_ids, position_ids=fed_positions, use_cache=False
            ).last_hidden_state
            check_plans_ran(self.loaded.model, plans)
            sums = [
                self._summed_loss(hidden[copy * len(rows) : (copy + 1) * len(rows)], tensors)
                for copy in range(copies)
            ]
        return torch.stack(sums, dim=1), tensors.counts

    @contextmanager
    def _reference_rows(self, rows: int) -> Iterator[dict[int, AttentionPlan]]:
        """Mask the heads in the rows after the first ``rows`` and share the layers below."""
        if not self.heads:
            yield {}
            return
        model = self.loaded.model
        with ExitStack() as stack:
            mode = self.config.mask_mode
            plans = stack.enter_context(masked_heads(model, self.heads, mode, slice(rows, None)))
            stack.enter_context(shared_prefix(model, shared_prefix_layers(self.heads), rows))
            yield plans

    def _summed_loss(self, hidden: torch.Tensor, tensors: _Batch) -> torch.Tensor:
        """Sum of next-token cross-entropy per segment, from final hidden states, in chunks.

        The output layer and the cross-entropy run in fp32 whatever the model's dtype.
        """
        states = hidden[
            tensors.predicting[0].to(hidden.device), tensors.predicting[1].to(hidden.device)
        ]
        targets = tensors.targets.to(hidden.device)
        owner = tensors.owner.to(hidden.device)
        sums = torch.zeros(len(tensors.counts), dtype=torch.float64, device=hidden.device)
        step = self.config.loss_chunk_rows
        for start in range(0, states.shape[0], step):
            logits = self.output_head(states[start : start + step])
            # the fused log-softmax kernel: about 2.5x faster on a CPU than logsumexp - gather
            losses = F.cross_entropy(logits, targets[start : start + step], reduction="none")
            sums.index_add_(0, owner[start : start + step], losses.double())
        return sums.cpu()

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


def shared_prefix_layers(heads: Sequence[Sequence[int]]) -> int:
    """How many bottom layers the plain and the masked model share: those below every head."""
    return min(int(layer) for layer, _ in heads)


# Decoder-layer arguments that hold one entry per batch row (or one broadcast over all rows),
# and those that hold none. Any other tensor argument is refused: the shared prefix cannot
# tell whether it carries rows.
ROW_ARGUMENTS = frozenset(
    {"hidden_states", "attention_mask", "position_ids", "position_embeddings"}
)
ROWLESS_ARGUMENTS = frozenset(
    {"cache", "past_key_values", "past_key_value", "use_cache", "cache_position"}
)


def _first_rows(name: str, value, rows: int):
    """The first ``rows`` batch rows of decoder-layer argument ``name`` of a doubled batch."""
    if value is None or name in ROWLESS_ARGUMENTS:
        return value
    if isinstance(value, tuple):
        return tuple(_first_rows(name, item, rows) for item in value)
    if not isinstance(value, torch.Tensor) and not is_block_mask(value):
        return value
    if name not in ROW_ARGUMENTS:
        raise MaskingError(
            f"decoder layers receive a tensor argument '{name}' the shared prefix does not know"
        )
    if value.shape and value.shape[0] == 2 * rows:  # a tensor, or flex_attention's BlockMask
        return first_block_rows(value, rows) if is_block_mask(value) else value[:rows]
    if value.shape and value.shape[0] in (1, rows):
        return value  # broadcast over every row, or the layer below's output: already cut
    raise MaskingError(
        f"decoder-layer argument '{name}' has {value.shape[0]} rows, not 1, {rows} or {2 * rows}"
    )


@contextmanager
def shared_prefix(model: torch.nn.Module, layers: int, rows: int) -> Iterator[None]:
    """Run the bottom ``layers`` decoder layers on the first ``rows`` rows of a doubled batch.

    The model is fed ``2 * rows`` rows whose halves are the same tokens. Below the first
    masked layer both halves would compute the same hidden states, so each of those layers
    gets only the first half of every argument that carries rows (:data:`ROW_ARGUMENTS`,
    matched by name through the layer's signature), and the last of them hands a copy of its
    output to both halves.
    """
    blocks = model.base_model.layers[:layers]
    handles = []

    def take_first_half(module, args, kwargs):
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
        for name, value in list(bound.arguments.items()):
            if isinstance(value, dict) and name not in ROW_ARGUMENTS:  # the **kwargs bucket
                bound.arguments[name] = {k: _first_rows(k, v, rows) for k, v in value.items()}
            else:
                bound.arguments[name] = _first_rows(name, value, rows)
        return bound.args, bound.kwargs

    def copy_to_both_halves(module, args, kwargs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        doubled = torch.cat([hidden, hidden])
        return (doubled, *output[1:]) if isinstance(output, tuple) else doubled

    try:
        for block in blocks:
            handles.append(block.register_forward_pre_hook(take_first_half, with_kwargs=True))
        if blocks:
            handles.append(blocks[-1].register_forward_hook(copy_to_both_halves, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()
