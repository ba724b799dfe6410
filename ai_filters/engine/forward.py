"""The forward pass and the loss: per segment of a planned batch, its summed next-token losses.

A batch (:mod:`ai_filters.engine.batching`) becomes right-padded ``input_ids`` (and, when a row
holds several documents, ``position_ids`` from 0 per document, from which transformers builds
the block-diagonal causal mask). Attention is causal, so no real position ever sees padding,
and no attention mask is fed (the causal fast path).

With heads, the batch is fed twice in one forward pass, plain rows then masked rows
(:func:`ai_filters.engine.masking.masked_heads`), the layers below the first masked head run
once (:mod:`ai_filters.engine.prefix`). The loss is computed from the final hidden states in
chunks of rows, through the model's own output processing
(:class:`ai_filters.engine.architectures.OutputHead`), the output layer and the cross-entropy
in fp32 whatever the model's dtype: the full ``[batch, seq, vocab]`` logits never exist.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ai_filters.engine.architectures import OutputHead
from ai_filters.engine.batching import BatchPlan, FeedCounts
from ai_filters.engine.masking import AttentionPlan, check_plans_ran, masked_heads
from ai_filters.engine.models import LoadedModel
from ai_filters.engine.prefix import shared_prefix, shared_prefix_layers


@dataclass
class BatchTensors:
    """A batch as tensors: ``input_ids`` ``[rows, width]``, ``position_ids`` (``None`` unless a
    row holds several documents), the predicting positions with their targets, the index of
    their segment in the batch (``owner``), each segment's predicted-token count, and the
    number of real (not padding) tokens."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor | None
    predicting: tuple[torch.Tensor, torch.Tensor]
    targets: torch.Tensor
    owner: torch.Tensor
    counts: torch.Tensor
    real_tokens: int


def batch_tensors(batch: BatchPlan, pad_id: int) -> BatchTensors:
    """The batch's input ids (right-padded with ``pad_id``), positions, and predicting
    positions; padding continues the last document's positions (causal attention hides it)."""
    lengths = [[len(segment.ids) for segment in row] for row in batch]
    width = max(sum(row) for row in lengths)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
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
        positions[row, start:] = torch.arange(width - start) + positions[row, start - 1] + 1
    row_index, column_index = torch.cat(rows), torch.cat(columns)
    packed = any(len(segments) > 1 for segments in batch)
    return BatchTensors(
        input_ids=input_ids,
        position_ids=positions if packed else None,
        predicting=(row_index, column_index),
        targets=input_ids[row_index, column_index + 1],
        owner=torch.cat(owners),
        counts=torch.tensor(counts, dtype=torch.float64),
        real_tokens=sum(map(sum, lengths)),
    )


class ForwardPass:
    """Feeds planned batches to ``loaded``'s model, plain and with ``heads`` masked (mode
    ``mask_mode``), and counts what it feeds in :attr:`feed`.

    Not thread-safe: masking edits the shared model's attention while a batch runs.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        heads: Sequence[tuple[int, int]],
        mask_mode: str,
        loss_chunk_rows: int,
    ) -> None:
        self.loaded = loaded
        self.heads = list(heads)
        self.mask_mode = mask_mode
        self.loss_chunk_rows = loss_chunk_rows
        self.output_head = OutputHead(loaded.model, torch.float32)
        self.pad_id = getattr(loaded.tokenizer, "pad_token_id", None) or 0
        self.feed = FeedCounts()

    def losses(self, batch: BatchPlan) -> tuple[torch.Tensor, torch.Tensor]:
        """Per segment of ``batch``, in row order: ``[sum CE base, sum CE ref]`` (float64;
        base only without heads) and the number of predicted tokens, both on the CPU."""
        tensors = batch_tensors(batch, self.pad_id)
        self.feed.real += tensors.real_tokens
        self.feed.fed += tensors.input_ids.numel()
        copies = 2 if self.heads else 1
        device = self.loaded.device
        fed_ids = tensors.input_ids.repeat(copies, 1).to(device)
        positions = tensors.position_ids
        fed_positions = None if positions is None else positions.repeat(copies, 1).to(device)
        rows = len(batch)
        with torch.inference_mode(), self._reference_rows(rows) as plans:
            hidden = self.loaded.model.base_model(
                input_ids=fed_ids, position_ids=fed_positions, use_cache=False
            ).last_hidden_state
            check_plans_ran(self.loaded.model, plans)
            sums = [
                self.summed_loss(hidden[copy * rows : (copy + 1) * rows], tensors)
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
            plans = stack.enter_context(
                masked_heads(model, self.heads, self.mask_mode, slice(rows, None))
            )
            stack.enter_context(shared_prefix(model, shared_prefix_layers(self.heads), rows))
            yield plans

    def summed_loss(self, hidden: torch.Tensor, tensors: BatchTensors) -> torch.Tensor:
        """Sum of next-token cross-entropy per segment, from final hidden states, in chunks of
        ``loss_chunk_rows`` positions; the output layer and the cross-entropy in fp32."""
        states = hidden[
            tensors.predicting[0].to(hidden.device), tensors.predicting[1].to(hidden.device)
        ]
        targets = tensors.targets.to(hidden.device)
        owner = tensors.owner.to(hidden.device)
        sums = torch.zeros(len(tensors.counts), dtype=torch.float64, device=hidden.device)
        step = self.loss_chunk_rows
        for start in range(0, states.shape[0], step):
            logits = self.output_head(states[start : start + step])
            # the fused log-softmax kernel: about 2.5x faster on a CPU than logsumexp - gather
            losses = F.cross_entropy(logits, targets[start : start + step], reduction="none")
            sums.index_add_(0, owner[start : start + step], losses.double())
        return sums.cpu()
