"""What the scorer blocks share: the model cache, the score histogram and how a skip is written.

A scorer is a datatrove ``BaseFilter`` that keeps every document it can score, writing its
score under its ``score_key`` in ``metadata``, and drops the others with
``metadata["filter_reason"]`` set to the reason (one of
:data:`ai_filters.engine.scoring.SKIP_REASONS`);
the exclusion writer, when given, receives them, and every drop is counted as
``dropped_<reason>``.

datatrove copies the pipeline for every task, so model-backed scorers load their model lazily,
in the task, from a module-level cache keyed by (model spec, device, dtype): tasks that run in
the same process share one copy.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.pipeline.writers.disk_base import DiskWriter
from datatrove.utils.batching import batched
from datatrove.utils.typeshelper import StatHints

from ai_filters.documents import repair_text
from ai_filters.engine.models import LoadedModel, load_model
from ai_filters.engine.scoring import DocumentScore, ScoringConfig, ScoringEngine
from ai_filters.engine.settings import EngineSettings
from ai_filters.fields import FILTER_REASON_KEY, SKIP_NO_TEXT, SKIP_REASON_KEY
from ai_filters.selection.folder import SKIPPED_STAT

T = TypeVar("T")
_END = object()
SCORE_BIN_WIDTH = 0.05
SCORE_BIN_RANGE = (-0.5, 1.5)

_MODELS: dict[tuple[str, str, str], LoadedModel] = {}


def shared_model(
    spec: str, device: str | torch.device, dtype: str | torch.dtype | None = None
) -> LoadedModel:
    """The model for (``spec``, ``device``, ``dtype``), loaded once per process.

    The key is the request as given (``dtype=None`` and the device's default dtype are two
    keys); ``"float32"`` and ``torch.float32`` are the same key.
    """
    key = (spec, str(torch.device(device)), str(dtype).removeprefix("torch."))
    if key not in _MODELS:
        _MODELS[key] = load_model(spec, device=device, dtype=dtype)
    return _MODELS[key]


def score_bin(score: float) -> str:
    """Histogram stat key of ``score``: ``score_bin_<lower edge>`` in bins of 0.05.

    Bins cover ``[-0.5, 1.5)``; a score below it counts in ``score_bin_-0.50`` and one above in
    ``score_bin_1.45``, so the bins always add up to the documents scored.
    """
    low, high = SCORE_BIN_RANGE
    last = round((high - low) / SCORE_BIN_WIDTH) - 1
    position = (score - low) / SCORE_BIN_WIDTH + 1e-9  # a score on an edge opens its bin
    index = min(max(math.floor(position), 0), last)
    return f"score_bin_{low + index * SCORE_BIN_WIDTH:.2f}"


class ScorerBlock(BaseFilter):
    """What every scorer block shares: how a document without a score is dropped.

    A dropped document gets ``metadata["filter_reason"]``, text that datatrove's writers can
    store, and the stat ``skipped/<domain>/<reason>`` (besides BaseFilter's
    ``dropped_<reason>``), from which the selection report counts skips per domain.
    """

    score_key: str

    def skip(self, doc: Document, reason: str | None = None) -> tuple[bool, str]:
        """Make ``doc`` writable and return its drop with ``reason`` (default: the reason
        :func:`unscorable` gives)."""
        reason = reason or unscorable(doc)
        if not isinstance(doc.text, str):
            doc.text = "" if doc.text is None else str(doc.text)
        doc.text, repaired = repair_text(doc.text)  # writers cannot store lone surrogates
        if repaired:
            doc.metadata["text_repaired"] = True
        domain = doc.metadata.get("domain", "all")
        self.stat_update(SKIPPED_STAT.format(domain=domain, reason=reason))
        return False, reason


class EngineScorer(ScorerBlock):
    """What the model-backed scorers share: the lazy engine, the device, batching and skips.

    ``engine`` holds every engine setting (:class:`~ai_filters.engine.settings.EngineSettings`,
    validated before any task starts); ``docs_per_batch`` documents go to the engine at once
    (datatrove's batch: the engine sorts them by length, so larger batches pad less).

    A subclass sets ``score_key`` and implements :meth:`_build_engine` (from the shared model)
    and :meth:`_score_value` (the number stored under ``score_key``).

    Stats besides BaseFilter's (whose ``time_stats`` count the seconds per batch, reading the
    batch included): ``model_seconds`` (seconds in the model's forward passes and losses) and
    ``task_seconds`` (the block's wall time, the steps before and after it included): their
    ratio is the share of a scoring task spent in the model.
    """

    _requires_dependencies = ["torch", "transformers"]

    def __init__(
        self,
        model: str | None,
        engine: EngineSettings,
        docs_per_batch: int,
        exclusion_writer: DiskWriter | None,
    ) -> None:
        super().__init__(exclusion_writer, batch_size=docs_per_batch)
        self.model = model
        self.engine = engine
        self._rank = 0
        self._scorer: ScoringEngine | None = None

    @property
    def config(self) -> ScoringConfig:
        """The engine's settings as given (``None`` fields resolved when the engine is built)."""
        return self.engine.scoring

    def __getstate__(self) -> dict:
        """Copies and pickles of the block never carry a loaded model."""
        return dict(self.__dict__, _scorer=None)

    @property
    def scorer(self) -> ScoringEngine:
        """The engine, built on first use (in the task) from the shared model."""
        if self._scorer is None:
            cpus = os.environ.get("SLURM_CPUS_PER_TASK")
            if cpus and self._device() == "cpu":  # one thread per allocated core, no more
                torch.set_num_threads(int(cpus))
            self._scorer = self._build_engine()
        return self._scorer

    def _shared_model(self, spec: str) -> LoadedModel:
        return shared_model(spec, self._device(), self.engine.dtype)

    def _build_engine(self) -> ScoringEngine:
        raise NotImplementedError

    def _score_value(self, score: DocumentScore) -> float:
        raise NotImplementedError

    def _device(self) -> str:
        if self.engine.device is not None:
            return self.engine.device
        if torch.cuda.is_available():
            return f"cuda:{self._rank % torch.cuda.device_count()}"
        return "cpu"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """BaseFilter's contract (same stats, timing and exclusion writer), with reading and
        tokenizing off the critical path: while the model scores one batch, a background thread
        reads the next one from ``data`` and tokenizes it (:meth:`ScoringEngine.score_batches`).
        """
        self._rank = rank
        started = time.perf_counter()
        model_seconds = self.scorer.feed.model_seconds
        batches = batched(data, self.batch_size)
        scored = self.scorer.score_batches(batches, texts=scorable_texts)
        with self.exclusion_writer or contextlib.nullcontext() as writer:
            for batch, scores in self._timed(scored):
                if self.batch_size > 1:
                    self.stat_update("batches")
                for doc, result in zip(batch, self._results(batch, scores), strict=True):
                    kept, reason = get_filter_result(result)
                    self.stat_update(StatHints.total)
                    if kept:
                        self.stat_update(StatHints.forwarded)
                        self.update_doc_stats(doc)
                        yield doc
                        continue
                    self.stat_update(StatHints.dropped, f"dropped_{reason}")
                    if writer:
                        doc.metadata[FILTER_REASON_KEY] = reason
                        writer.write(doc, rank)
        spent = self.scorer.feed.model_seconds - model_seconds
        self.stat_update("model_seconds", value=spent, unit="task")
        self.stat_update("task_seconds", value=time.perf_counter() - started, unit="task")

    def _timed(self, items: Iterable[T]) -> Iterator[T]:
        """``items`` with the time each one took to arrive in BaseFilter's ``time_stats``."""
        iterator = iter(items)
        while True:
            started = time.perf_counter()
            item = next(iterator, _END)
            if item is _END:
                return
            self.track_time("batch" if self.batch_size > 1 else None).update(
                time.perf_counter() - started
            )
            yield item

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        """Score the batch in one engine call; ``True`` or ``(False, reason)`` per document."""
        return self._results(batch, self.scorer.score_texts(scorable_texts(batch)))

    def _results(
        self, batch: list[Document], scores: list[DocumentScore]
    ) -> list[bool | tuple[bool, str]]:
        """The filter result of every document of ``batch``, given the scores of its
        :func:`scorable_texts`."""
        remaining = iter(scores)
        return [
            self._annotate(doc, next(remaining)) if unscorable(doc) is None else self.skip(doc)
            for doc in batch
        ]

    def _annotate(self, doc: Document, score: DocumentScore) -> bool | tuple[bool, str]:
        if score.skip_reason is not None:
            return self.skip(doc, score.skip_reason)
        value = self._score_value(score)
        doc.metadata.update(score.as_metadata())
        doc.metadata[self.score_key] = value
        self.stat_update("tokens_scored", value=score.n_tokens)
        self._count_score(value)
        return True

    def _count_score(self, value: float) -> None:
        self.stat_update(self.score_key, value=value)


def scorable_texts(batch: list[Document]) -> list[str]:
    """The texts of the documents of ``batch`` that can go to a scorer, in order."""
    return [doc.text for doc in batch if unscorable(doc) is None]


def unscorable(doc: Document) -> str | None:
    """Why ``doc`` cannot go to a scorer at all: its reader's ``skip_reason`` (unreadable input)
    or text that is not a string; ``None`` when it can."""
    if doc.metadata.get(SKIP_REASON_KEY):
        return str(doc.metadata[SKIP_REASON_KEY])
    return None if isinstance(doc.text, str) else SKIP_NO_TEXT
