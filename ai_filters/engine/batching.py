"""Batch planning: how tokenized documents become the rows and batches the model is fed.

Torch-free: a plan is lists of token ids, so it can be read, tested and benchmarked without a
model. :func:`cut_segments` cuts every document into the sequences that are fed (one truncation,
or consecutive windows); :func:`pack_rows` puts them into rows (one each, or several per row
when packing); :func:`plan_batches` groups the rows into batches under a padded-token budget,
longest first, so that padding stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Segment:
    """A sequence fed to the model: token ``ids`` of document number ``document``."""

    document: int
    ids: list[int]


Row = list[Segment]  # the segments one row of a batch holds, left to right
BatchPlan = list[Row]


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


def cut_segments(
    documents: Sequence[Sequence[int]], max_tokens: int, windows: bool
) -> tuple[list[Segment], list[int]]:
    """The segments fed for ``documents`` and, per document, the number of tokens scored.

    Without ``windows`` a document is truncated to its first ``max_tokens`` tokens; with it, cut
    into consecutive windows of ``max_tokens``. A window of fewer than 2 tokens predicts nothing
    and is left out (a document of fewer than 2 tokens has no segment at all).
    """
    segments: list[Segment] = []
    n_tokens: list[int] = []
    for index, ids in enumerate(documents):
        ids = list(ids) if windows else list(ids[:max_tokens])
        n_tokens.append(len(ids))
        for start in range(0, len(ids), max_tokens):
            window = ids[start : start + max_tokens]
            if len(window) >= 2:
                segments.append(Segment(index, window))
    return segments, n_tokens


def row_width(row: Row) -> int:
    """Tokens in ``row``."""
    return sum(len(segment.ids) for segment in row)


def pack_rows(segments: list[Segment], capacity: int | None) -> list[Row]:
    """The rows fed, longest segment first: one segment each when ``capacity`` is ``None``,
    else each segment placed into the first row with room for it (rows of up to ``capacity``
    tokens)."""
    ordered = sorted(segments, key=lambda segment: -len(segment.ids))
    if capacity is None:
        return [[segment] for segment in ordered]
    rows: list[Row] = []
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


def plan_batches(
    rows: list[Row], batch_size: int, batch_tokens: int, min_row_fill: float
) -> list[BatchPlan]:
    """``rows`` grouped into batches, longest first: a batch holds at most ``batch_size`` rows
    and ``batch_tokens`` padded tokens (a longer single row is a batch of its own), and only
    rows of at least ``min_row_fill`` of its width (its first row's)."""
    batches: list[BatchPlan] = []
    for row in sorted(rows, key=lambda row: -row_width(row)):
        if batches:
            batch = batches[-1]
            widest = row_width(batch[0])
            if (
                len(batch) < batch_size
                and (len(batch) + 1) * widest <= batch_tokens
                and row_width(row) >= min_row_fill * widest
            ):
                batch.append(row)
                continue
        batches.append([row])
    return batches
