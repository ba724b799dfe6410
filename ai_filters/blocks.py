"""datatrove pipeline blocks: score documents, then keep the top of each domain.

Scorers (``BaseFilter`` subclasses that keep every document they can score and write its score
under their ``score_key`` in ``metadata``; the selection steps below work with any of them):

- :class:`AttentionInfluenceScorer`: the method, ``attention_influence`` plus ``ai_loss_base``,
  ``ai_loss_ref``, ``ai_n_tokens`` and ``ai_doc_tokens``; with ``mask_mode="zero"`` it is the
  zero-ablation variant;
- :class:`PerplexityScorer`: the perplexity-filter baseline, ``perplexity_score`` = minus the
  base loss (so that, as for every scorer, higher is kept), plus the ``ai_loss_base`` /
  ``ai_n_tokens`` / ``ai_doc_tokens`` fields;
- :class:`RandomScorer`: the random-subset control, ``random_score`` uniform in [0, 1) from a
  hash of (seed, document id), plus ``ai_doc_tokens``.

A document a scorer cannot score is dropped with ``metadata["filter_reason"]`` set to the
reason (``too_short``, ``non_finite_loss``, ``zero_base_loss``, ``untokenizable_text``, or
``missing_text`` when the text is not a string) and goes to the ``exclusion_writer`` when one
is given; either way it is counted under ``dropped_<reason>`` in the stats. All three skip the
same documents (fewer than 2 tokens, text the tokenizer rejects), so their selections are
drawn from the same population.

:class:`DomainThresholds` computes each domain's top-fraction threshold over all scored shards
and :class:`DomainThresholdFilter` keeps a document whose score reaches its domain's threshold.

datatrove copies the pipeline for every task, so the scorer blocks load their model lazily, in
the task, and take it from a module-level cache keyed by (model spec, device, dtype): tasks
that run in the same process share one copy.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import torch
from datatrove.data import Document, DocumentsPipeline
from datatrove.io import open_file
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.tokens import DocumentTokenizer
from datatrove.pipeline.writers.disk_base import DiskWriter

from ai_filters.documents import repair_text
from ai_filters.heads import RetrievalHeads
from ai_filters.models import DEFAULT_MODEL, LoadedModel, load_model, load_tokenizer
from ai_filters.score_files import SKIP_NO_TEXT
from ai_filters.scoring import (
    SKIP_BAD_TEXT,
    SKIP_TOO_SHORT,
    DocumentScore,
    ScoringConfig,
    ScoringEngine,
)
from ai_filters.selection import compute_thresholds, write_thresholds

BELOW_THRESHOLD = "below_threshold"
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


class _EngineScorer(BaseFilter):
    """What the model-backed scorers share: the lazy engine, the device, batching and skips.

    A subclass sets ``score_key`` and implements :meth:`_build_engine` (from the shared model)
    and :meth:`_score_value` (the number stored under ``score_key``).
    """

    score_key: str

    def __init__(
        self,
        model: str | None,
        max_tokens: int | None,
        batch_size: int,
        forward_batch_size: int,
        batch_tokens: int | None,
        windows: bool,
        mask_mode: str,
        device: str | torch.device | None,
        dtype: str | torch.dtype | None,
        exclusion_writer: DiskWriter | None,
    ) -> None:
        super().__init__(exclusion_writer, batch_size=batch_size)
        self.model = model
        self.max_tokens = max_tokens
        self.config = ScoringConfig(  # validates the settings before any task starts
            max_tokens=max_tokens or 4096,
            batch_size=forward_batch_size,
            batch_tokens=batch_tokens,
            windows=windows,
            mask_mode=mask_mode,
        )
        self.device = device
        self.dtype = dtype
        self._rank = 0
        self._scorer: ScoringEngine | None = None

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

    def _engine(self, loaded: LoadedModel, heads: list[tuple[int, int]]) -> ScoringEngine:
        config = self.config
        if self.max_tokens is None:
            config = replace(config, max_tokens=min(4096, loaded.max_context))
        return ScoringEngine(loaded, heads, config)

    def _build_engine(self) -> ScoringEngine:
        raise NotImplementedError

    def _score_value(self, score: DocumentScore) -> float:
        raise NotImplementedError

    def _device(self) -> str:
        if self.device is not None:
            return str(self.device)
        if torch.cuda.is_available():
            return f"cuda:{self._rank % torch.cuda.device_count()}"
        return "cpu"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._rank = rank
        yield from super().run(data, rank, world_size)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        """Score the batch in one engine call; ``True`` or ``(False, reason)`` per document."""
        texts = [doc.text for doc in batch if _unscorable(doc) is None]
        scores = iter(self.scorer.score_texts(texts))
        return [
            self._annotate(doc, next(scores)) if _unscorable(doc) is None else _skip(doc)
            for doc in batch
        ]

    def _annotate(self, doc: Document, score: DocumentScore) -> bool | tuple[bool, str]:
        if score.skip_reason is not None:
            return _skip(doc, score.skip_reason)
        value = self._score_value(score)
        doc.metadata.update(score.as_metadata())
        doc.metadata[self.score_key] = value
        self.stat_update("tokens_scored", value=score.n_tokens)
        self._count_score(value)
        return True

    def _count_score(self, value: float) -> None:
        self.stat_update(self.score_key, value=value)


def _unscorable(doc: Document) -> str | None:
    """Why ``doc`` cannot go to a scorer at all: its reader's ``skip_reason`` (unreadable input)
    or text that is not a string; ``None`` when it can."""
    if doc.metadata.get("skip_reason"):
        return str(doc.metadata["skip_reason"])
    return None if isinstance(doc.text, str) else SKIP_NO_TEXT


def _skip(doc: Document, reason: str | None = None) -> tuple[bool, str]:
    """Make ``doc`` writable by datatrove's writers and return the drop with ``reason``
    (default: :func:`_unscorable`'s)."""
    reason = reason or _unscorable(doc)
    if not isinstance(doc.text, str):
        doc.text = "" if doc.text is None else str(doc.text)
    doc.text, repaired = repair_text(doc.text)  # writers cannot store lone surrogates
    if repaired:
        doc.metadata["text_repaired"] = True
    return False, reason


class AttentionInfluenceScorer(_EngineScorer):
    """Adds AttentionInfluence metadata to every document it can score; drops the others.

    Args:
        heads_path: heads file from ``ai-filters detect-heads`` (read in the task).
        model: model spec; default: the model named in the heads file.
        max_tokens: tokens per sequence fed at once; default ``min(4096, model context)``.
        batch_size: documents handed to the engine at once (datatrove's batch); the engine
            sorts them by length, so larger batches pad less.
        forward_batch_size: sequences per forward pass (at most).
        batch_tokens: padded tokens per forward pass (at most; one long document may exceed;
            default: by device, see :class:`~ai_filters.scoring.ScoringConfig`).
        windows: score long documents in consecutive windows of ``max_tokens`` instead of
            truncating them.
        mask_mode: ``uniform`` (the method) or ``zero`` (the ablation).
        device: torch device; default ``cuda:<rank % GPUs>`` when CUDA is available, else CPU.
        dtype: torch dtype or its name; default bf16 on a GPU, fp32 on a CPU.
        ignore_fingerprint: accept a heads file found on other weights of the same shape.
        exclusion_writer: receives the documents that cannot be scored.

    Stats: ``forwarded`` (documents scored), ``tokens_scored`` (tokens per scored document,
    total and mean), ``attention_influence`` (scores: mean, min, max), ``score_bin_<edge>``
    (histogram, see :func:`score_bin`), ``dropped_<reason>`` (documents not scored).
    """

    name = "🧠 AttentionInfluence scorer"
    type = "📊 - SCORER"
    score_key = "attention_influence"

    def __init__(
        self,
        heads_path: str | Path,
        model: str | None = None,
        max_tokens: int | None = None,
        batch_size: int = 64,
        forward_batch_size: int = 64,
        batch_tokens: int | None = None,
        windows: bool = False,
        mask_mode: str = "uniform",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        ignore_fingerprint: bool = False,
        exclusion_writer: DiskWriter | None = None,
    ) -> None:
        super().__init__(
            model,
            max_tokens,
            batch_size,
            forward_batch_size,
            batch_tokens,
            windows,
            mask_mode,
            device,
            dtype,
            exclusion_writer,
        )
        self.heads_path = str(heads_path)
        self.ignore_fingerprint = ignore_fingerprint

    def _build_engine(self) -> ScoringEngine:
        heads = RetrievalHeads.load(self.heads_path)
        loaded = shared_model(self.model or heads.model, self._device(), self.dtype)
        heads.check_model(loaded, strict_fingerprint=not self.ignore_fingerprint)
        return self._engine(loaded, heads.selected_heads)

    def _score_value(self, score: DocumentScore) -> float:
        return score.attention_influence

    def _count_score(self, value: float) -> None:
        super()._count_score(value)
        self.stat_update(score_bin(value))


class PerplexityScorer(_EngineScorer):
    """The perplexity-filter baseline: ``perplexity_score`` = minus the document's base loss.

    One forward pass per document (no masked copy), half the cost of AttentionInfluence. Higher
    scores are kept, so the top fraction is the lowest-loss fraction of each domain. Arguments
    as :class:`AttentionInfluenceScorer` (``model`` defaults to the embedded model); stats
    ``perplexity_score`` (mean, min, max), ``tokens_scored`` and ``dropped_<reason>``.
    """

    name = "📉 perplexity scorer"
    type = "📊 - SCORER"
    score_key = "perplexity_score"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        max_tokens: int | None = None,
        batch_size: int = 64,
        forward_batch_size: int = 64,
        batch_tokens: int | None = None,
        windows: bool = False,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        exclusion_writer: DiskWriter | None = None,
    ) -> None:
        super().__init__(
            model,
            max_tokens,
            batch_size,
            forward_batch_size,
            batch_tokens,
            windows,
            "uniform",
            device,
            dtype,
            exclusion_writer,
        )

    def _build_engine(self) -> ScoringEngine:
        return self._engine(shared_model(self.model, self._device(), self.dtype), [])

    def _score_value(self, score: DocumentScore) -> float:
        return -score.loss_base


class RandomScorer(BaseFilter):
    """The random-subset control: ``random_score`` uniform in [0, 1) from (``seed``, doc id).

    The score depends only on the seed and the document's id, never on sharding or order, so
    a rerun selects the same documents. It also writes ``ai_doc_tokens`` (the tokenizer of
    ``model``, no weights loaded) so that selections can be compared and matched by tokens, and
    skips exactly the documents the model scorers skip (fewer than 2 tokens, text the tokenizer
    rejects, text that is not a string).
    """

    name = "🎲 random scorer"
    type = "📊 - SCORER"
    score_key = "random_score"

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
        digest = hashlib.blake2b(f"{self.seed}\0{document_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if _unscorable(doc) is not None:
            return _skip(doc)
        try:
            tokens = len(self.tokenizer(doc.text).input_ids)
        except (TypeError, ValueError, UnicodeError):
            return _skip(doc, SKIP_BAD_TEXT)
        if tokens < 2:
            return _skip(doc, SKIP_TOO_SHORT)
        value = self.random_score(str(doc.id))
        doc.metadata[self.score_key] = value
        doc.metadata["ai_doc_tokens"] = tokens
        self.stat_update("tokens_scored", value=tokens)
        self.stat_update(self.score_key, value=value)
        return True


def load_thresholds(source: str | Path | Mapping) -> dict[str, float]:
    """Per-domain thresholds from a thresholds.json path (local or any fsspec URL) or a mapping.

    Format: a JSON object ``{domain: {"threshold": float, ...}}``; other keys of a domain's
    entry (counts, fraction, ...) are ignored. In a mapping passed directly, a domain's value
    may also be the bare threshold.
    """
    if isinstance(source, Mapping):
        entries, where = source, "the thresholds mapping"
    else:
        with open_file(str(source), "rt") as file:
            entries, where = json.load(file), str(source)
    if not isinstance(entries, Mapping):
        raise ValueError(f"{where} must be a JSON object of domain -> {{'threshold': number}}")
    thresholds = {}
    for domain, entry in entries.items():
        value = entry.get("threshold") if isinstance(entry, Mapping) else entry
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: domain '{domain}' has no numeric 'threshold'")
        thresholds[str(domain)] = float(value)
    return thresholds


class DomainThresholdFilter(BaseFilter):
    """Keeps a document when ``metadata[score_key] >= threshold[domain]``.

    Args:
        thresholds: thresholds.json path (read in the task, since an earlier stage of the same
            pipeline may write it) or mapping (format: :func:`load_thresholds`).
        score_key: metadata field holding the score, the ``score_key`` of the scorer that ran
            (``attention_influence``, ``perplexity_score``, ``random_score``).
        domain_key: metadata field holding the document's domain.
        default_domain: domain of documents without ``domain_key``; without it such a document
            is an error.
        exclusion_writer: receives the rejected documents (``filter_reason`` =
            ``below_threshold``).

    A document without a score, or whose domain has no threshold, is an error (ValueError):
    run a scorer first, and make thresholds for every domain.
    Stats: ``kept_<domain>`` and ``below_threshold_<domain>`` besides datatrove's own.
    """

    name = "🧠 domain threshold filter"

    def __init__(
        self,
        thresholds: str | Path | Mapping,
        score_key: str = AttentionInfluenceScorer.score_key,
        domain_key: str = "domain",
        default_domain: str | None = None,
        exclusion_writer: DiskWriter | None = None,
    ) -> None:
        super().__init__(exclusion_writer)
        if isinstance(thresholds, Mapping):
            self.source = "the thresholds mapping"
            self._thresholds: dict[str, float] | None = load_thresholds(thresholds)
        else:  # read in the task: in a pipeline the file is written by an earlier stage
            self.source = str(thresholds)
            self._thresholds = None
        self.score_key = score_key
        self.domain_key = domain_key
        self.default_domain = default_domain

    @property
    def thresholds(self) -> dict[str, float]:
        if self._thresholds is None:
            self._thresholds = load_thresholds(self.source)
        return self._thresholds

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        domain = self._domain(doc)
        if domain not in self.thresholds:
            raise ValueError(
                f"domain '{domain}' of document {doc.id} has no threshold in {self.source} "
                f"(domains there: {', '.join(sorted(self.thresholds))})"
            )
        score = doc.metadata.get(self.score_key)
        if score is None:
            raise ValueError(
                f"document {doc.id} has no metadata['{self.score_key}']; run the scorer that "
                "writes it before this filter, or set score_key"
            )
        if score >= self.thresholds[domain]:
            self.stat_update(f"kept_{domain}")
            return True
        self.stat_update(f"{BELOW_THRESHOLD}_{domain}")
        return False, BELOW_THRESHOLD

    def _domain(self, doc: Document) -> str:
        return document_domain(doc, self.domain_key, self.default_domain)


def document_domain(doc: Document, domain_key: str, default_domain: str | None) -> str:
    """The document's domain; a clear error when it has none and no default is given."""
    domain = doc.metadata.get(domain_key, default_domain)
    if domain is None:
        raise ValueError(
            f"document {doc.id} has no metadata['{domain_key}']; pass default_domain= to give "
            "such documents a domain, or set domain_key"
        )
    return str(domain)


class DomainThresholds(PipelineStep):
    """Computes every domain's top-``fraction`` threshold over all scored shards (one task).

    Reads the ``.jsonl.gz`` shards under ``scored_folder`` (all tasks' output of the scoring
    stage), applies the exact rule of :mod:`ai_filters.selection` to ``metadata[score_key]``
    and writes ``output_path`` (thresholds.json). Tokens are the documents' full token counts
    (``ai_doc_tokens``). Documents passing through the step (if any) are yielded unchanged.
    """

    name = "🧮 domain thresholds"
    type = "📊 - STATS"

    def __init__(
        self,
        scored_folder: str,
        output_path: str | Path,
        fraction: float = 0.2,
        score_key: str = AttentionInfluenceScorer.score_key,
        domain_key: str = "domain",
        default_domain: str | None = None,
    ) -> None:
        super().__init__()
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.scored_folder = scored_folder
        self.output_path = str(output_path)
        self.fraction = fraction
        self.score_key = score_key
        self.domain_key = domain_key
        self.default_domain = default_domain

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if world_size != 1:
            raise ValueError("DomainThresholds needs every scored shard: run it with tasks=1")
        reader = JsonlReader(self.scored_folder, glob_pattern="**/*.jsonl.gz")
        rows = (
            (
                document_domain(doc, self.domain_key, self.default_domain),
                doc.metadata[self.score_key],
                doc.metadata["ai_doc_tokens"],
            )
            for doc in reader.run()
        )
        with self.track_time():
            thresholds = compute_thresholds(rows, self.fraction)
        write_thresholds(thresholds, self.output_path)
        for domain, entry in thresholds.items():
            self.stat_update(f"documents_{domain}", value=entry.documents)
            self.stat_update(f"selected_{domain}", value=entry.documents_selected)
        if data:
            yield from data


class FolderTokenizer(DocumentTokenizer):
    """datatrove's ``DocumentTokenizer`` that also takes a local Hugging Face tokenizer folder.

    datatrove loads a tokenizer from a Hub name or a ``tokenizer.json`` file and records that
    string in the ``.ds.metadata`` files; nanotron later loads the recorded name with
    ``AutoTokenizer.from_pretrained``, which needs a Hub name or a *folder*. Given a folder,
    this block reads its ``tokenizer.json`` and records the folder, so offline runs (the demo's
    embedded tokenizer) produce data nanotron can load.
    """

    @cached_property
    def tokenizer(self):
        folder = Path(self.tokenizer_name_or_path)
        if not folder.is_dir():
            return DocumentTokenizer.tokenizer.func(self)
        self.tokenizer_name_or_path = str(folder / "tokenizer.json")
        try:
            return DocumentTokenizer.tokenizer.func(self)
        finally:
            self.tokenizer_name_or_path = str(folder)
