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

Batches are formed over length-sorted segments under a padded-token budget and padded on the
right, which leaves every real position's causal context unchanged, so padding never changes a
score. One model serves both losses: each batch is fed once with its plain and its masked copy
stacked, and the layers below the first masked head run only once (:func:`shared_prefix`);
on the embedded model the masked heads start at layer 17 of 30. The loss is computed from the
final hidden states in chunks of rows: the full ``[batch, seq, vocab]`` logits are never
materialised.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ai_filters.masking import MASK_MODES, masked_heads
from ai_filters.models import LoadedModel

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
    """How documents are cut and batched. ``max_tokens`` is the longest sequence fed at once.

    ``batch_tokens`` bounds the padded tokens of one batch (one long document may exceed it;
    the forward pass then holds twice as many rows: plain and masked). ``None`` picks by
    device: on a CPU ``max(max_tokens, 1024)``, where bigger batches measured no faster and
    only cost memory; on a GPU 32,768.
    """

    max_tokens: int = 4096
    batch_size: int = 64
    batch_tokens: int | None = None
    windows: bool = False
    mask_mode: str = "uniform"
    loss_chunk_rows: int = 1024

    def __post_init__(self) -> None:
        if self.max_tokens < 2:
            raise ValueError("max_tokens must be at least 2")
        if self.batch_size < 1 or (self.batch_tokens is not None and self.batch_tokens < 1):
            raise ValueError("batch_size and batch_tokens must be positive")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"mask mode must be one of {', '.join(MASK_MODES)}")


@dataclass
class _Segment:
    document: int
    ids: list[int]


class ScoringEngine:
    """Scores documents with one loaded model and a list of heads to mask.

    With no heads, only the base loss is computed (``loss_ref`` is ``None``): the perplexity
    filter's score at half the cost. Not thread-safe: masking installs hooks on the shared
    model while the reference pass runs.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        heads: Sequence[Sequence[int]],
        config: ScoringConfig | None = None,
    ) -> None:
        self.loaded = loaded
        self.heads = [tuple(head) for head in heads]
        config = config or ScoringConfig(max_tokens=min(4096, loaded.max_context))
        if config.batch_tokens is None:
            budget = max(config.max_tokens, 1024) if loaded.device.type == "cpu" else 32768
            config = replace(config, batch_tokens=budget)
        self.config = config

    def tokenize(self, text: str) -> list[int] | None:
        """The tokenizer's default encoding of ``text`` (its own special tokens, if any).

        ``None`` when the tokenizer cannot encode the text (lone UTF-16 surrogates, say).
        """
        try:
            return self.loaded.tokenizer(text).input_ids
        except (TypeError, ValueError, UnicodeError):
            return None

    def score_texts(
        self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None
    ) -> list[DocumentScore]:
        """Scores of ``texts``, in input order; text the tokenizer rejects gets a reason."""
        encoded = [self.tokenize(text) for text in texts]
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
        for batch in self._batches(segments):
            batch_sums, batch_counts = self._batch_losses([segment.ids for segment in batch])
            finished = 0
            for row, segment in enumerate(batch):
                sums[segment.document] += batch_sums[row]
                counts[segment.document] += batch_counts[row]
                remaining[segment.document] -= 1
                finished += remaining[segment.document] == 0
            if progress is not None:
                progress(finished, sum(len(segment.ids) for segment in batch))
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

    def _batches(self, segments: list[_Segment]) -> list[list[_Segment]]:
        """Longest first; a batch holds at most ``batch_size`` rows and ``batch_tokens`` padded."""
        ordered = sorted(segments, key=lambda segment: -len(segment.ids))
        batches: list[list[_Segment]] = []
        for segment in ordered:
            if batches:
                batch = batches[-1]
                padded = (len(batch) + 1) * len(batch[0].ids)
                if len(batch) < self.config.batch_size and padded <= self.config.batch_tokens:
                    batch.append(segment)
                    continue
            batches.append([segment])
        return batches

    def _batch_losses(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row: ``[sum CE base, sum CE ref]`` (float64; base only without heads) and the
        number of predicted tokens.

        With heads, the batch is fed twice in one forward pass, plain rows then masked rows;
        the layers below the first masked one run once, on the plain rows, and are copied to
        both.
        """
        rows = len(sequences)
        width = max(len(ids) for ids in sequences)
        pad = getattr(self.loaded.tokenizer, "pad_token_id", None) or 0
        input_ids = torch.full((rows, width), pad, dtype=torch.long)
        attention_mask = torch.zeros((rows, width), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        copies = 2 if self.heads else 1
        fed_ids = input_ids.repeat(copies, 1).to(self.loaded.device)
        fed_mask = attention_mask.repeat(copies, 1).to(self.loaded.device)
        with torch.inference_mode(), self._reference_rows(rows):
            sums = self._summed_loss(fed_ids, fed_mask)
        counts = attention_mask[:, 1:].sum(dim=1).double()
        return sums.view(copies, rows).T, counts

    @contextmanager
    def _reference_rows(self, rows: int) -> Iterator[None]:
        """Mask the heads in the rows after the first ``rows`` and share the layers below."""
        if not self.heads:
            yield
            return
        model = self.loaded.model
        with (
            masked_heads(model, self.heads, self.config.mask_mode, rows=slice(rows, None)),
            shared_prefix(model, shared_prefix_layers(self.heads), rows),
        ):
            yield

    def _summed_loss(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sum of next-token cross-entropy per row, from hidden states, in chunks of rows.

        A batch without padding is fed without a mask: attention then takes its causal fast
        path instead of an explicit mask.
        """
        model = self.loaded.model
        unpadded = bool(attention_mask.all())
        hidden = model.base_model(
            input_ids=input_ids,
            attention_mask=None if unpadded else attention_mask,
            use_cache=False,
        )
        hidden = hidden.last_hidden_state[:, :-1]
        predicted = attention_mask[:, 1:].bool()
        rows = predicted.nonzero(as_tuple=True)
        states = hidden[rows]
        targets = input_ids[:, 1:][rows]
        row_of_state = rows[0]
        sums = torch.zeros(input_ids.shape[0], dtype=torch.float64, device=input_ids.device)
        head = model.get_output_embeddings()
        step = self.config.loss_chunk_rows
        for start in range(0, states.shape[0], step):
            logits = head(states[start : start + step]).float()
            # the fused log-softmax kernel: about 2.5x faster on a CPU than logsumexp - gather
            losses = F.cross_entropy(logits, targets[start : start + step], reduction="none")
            sums.index_add_(0, row_of_state[start : start + step], losses.double())
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


def _first_rows(value, rows: int):
    """``value`` cut to its first ``rows`` batch rows when it holds both copies of a batch."""
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == 2 * rows:
        return value[:rows]
    if isinstance(value, tuple):
        return tuple(_first_rows(item, rows) for item in value)
    return value


@contextmanager
def shared_prefix(model: torch.nn.Module, layers: int, rows: int) -> Iterator[None]:
    """Run the bottom ``layers`` decoder layers on the first ``rows`` rows of a doubled batch.

    The model is fed ``2 * rows`` rows whose halves are the same tokens. Below the first
    masked layer both halves would compute the same hidden states, so each of those layers
    gets only the first half (hidden states, mask and any per-row tensor), and the last of them
    hands a copy of its output to both halves.
    """
    blocks = model.base_model.layers[:layers]
    handles = []

    def take_first_half(module, args, kwargs):
        return _first_rows(args, rows), {k: _first_rows(v, rows) for k, v in kwargs.items()}

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
