"""Every scorer a selection can be made with, in one registry.

A scorer gives each document a score under its ``score_key`` (higher is kept); the selection
stages keep the top fraction of each domain by that score, whatever the scorer. The method is
``attention_influence``; the others are the controls that answer the paper's open questions (is
it the heads, or any ablation? a cheap perplexity filter? up-sampling any subset?). Adding a
scorer is one block under :mod:`ai_filters.blocks` and one entry in :data:`SCORERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from ai_filters.engine.masking import MASK_MODES
from ai_filters.engine.models import DEFAULT_MODEL
from ai_filters.engine.settings import EngineSettings
from ai_filters.fields import (
    DISTILLED_SCORE_KEY,
    DOCUMENT_TOKENS_KEY,
    ENGINE_FIELDS,
    LOSS_BASE_KEY,
    PERPLEXITY_SCORE_KEY,
    RANDOM_SCORE_KEY,
    SCORE_KEY,
    SCORED_TOKENS_KEY,
)


@dataclass(frozen=True)
class ScorerOptions:
    """What a selection run passes to its scorer; a scorer uses the options it needs.

    ``model=None`` means the heads file's model (scorers with heads) or the embedded default.
    ``engine`` goes whole to the model-backed scorers (their own mask mode replaces its one);
    ``docs_per_batch`` documents go to a scorer at once.
    """

    heads_path: str | None = None
    model: str | None = None
    engine: EngineSettings = field(default_factory=EngineSettings)
    docs_per_batch: int = 64
    seed: int = 0
    exclusion_writer: DiskWriter | None = None
    distilled_model: str | None = None  # a folder written by ``ai-filters distill``


@dataclass(frozen=True)
class Scorer:
    """One registry entry: how a scorer is named, what it writes and how its block is built."""

    name: str
    score_key: str
    needs_heads: bool
    mask_mode: str | None  # how the heads are masked, for scorers with heads
    summary: str  # one line: what the score is (help texts, reports)
    card_text: str  # what the score means, for a dataset card (markdown)
    table_fields: tuple[str, ...]  # metadata fields of the score tables, the score first
    build: Callable[[ScorerOptions], BaseFilter]


def _attention_influence(mask_mode: str) -> Callable[[ScorerOptions], BaseFilter]:
    def build(options: ScorerOptions) -> BaseFilter:
        from ai_filters.blocks import AttentionInfluenceScorer

        if not options.heads_path:
            raise ValueError("this scorer masks retrieval heads: give a heads file (--heads)")
        return AttentionInfluenceScorer(
            str(Path(options.heads_path).resolve()),
            model=options.model,
            engine=options.engine.with_scoring(mask_mode=mask_mode),
            docs_per_batch=options.docs_per_batch,
            exclusion_writer=options.exclusion_writer,
        )

    return build


def _perplexity(options: ScorerOptions) -> BaseFilter:
    from ai_filters.blocks import PerplexityScorer

    return PerplexityScorer(
        model=options.model or DEFAULT_MODEL,
        engine=options.engine,
        docs_per_batch=options.docs_per_batch,
        exclusion_writer=options.exclusion_writer,
    )


def _random(options: ScorerOptions) -> BaseFilter:
    from ai_filters.blocks import RandomScorer

    return RandomScorer(
        options.seed, options.model or DEFAULT_MODEL, exclusion_writer=options.exclusion_writer
    )


def _distilled(options: ScorerOptions) -> BaseFilter:
    from ai_filters.blocks import DistilledScorer

    if not options.distilled_model:
        raise ValueError(
            "this scorer applies a distilled model: give its folder (--distilled-model), "
            "made by 'ai-filters distill'"
        )
    return DistilledScorer(
        str(Path(options.distilled_model).resolve()),
        tokenizer_model=options.model,
        exclusion_writer=options.exclusion_writer,
    )


_AI_TEXT = (
    "A small pretrained language model, the *selector*, reads every document twice: as it is, "
    "and with its retrieval heads masked{how}. The score is the relative rise of the mean "
    "next-token loss, `(loss_ref - loss_base) / loss_base`{reading}."
)

SCORERS: dict[str, Scorer] = {
    scorer.name: scorer
    for scorer in (
        Scorer(
            name="attention_influence",
            score_key=SCORE_KEY,
            needs_heads=True,
            mask_mode=MASK_MODES[0],
            summary="(L_ref - L_base) / L_base with the retrieval heads made uniform (the method)",
            card_text="**AttentionInfluence** ([arXiv 2505.07293](https://arxiv.org/abs/2505.07293"
            ")). "
            + _AI_TEXT.format(
                how=" (their attention spread uniformly over the visible prefix)",
                reading="; the paper reads a higher score as a more reasoning-intensive document",
            ),
            table_fields=ENGINE_FIELDS,
            build=_attention_influence(MASK_MODES[0]),
        ),
        Scorer(
            name="zero_ablation",
            score_key=SCORE_KEY,
            needs_heads=True,
            mask_mode=MASK_MODES[1],
            summary="the same with the heads' outputs zeroed instead (the ablation)",
            card_text="**zero ablation of the retrieval heads**, a control of AttentionInfluence "
            "([arXiv 2505.07293](https://arxiv.org/abs/2505.07293)). "
            + _AI_TEXT.format(
                how=" (their outputs set to zero, instead of the method's uniform attention)",
                reading="",
            ),
            table_fields=ENGINE_FIELDS,
            build=_attention_influence(MASK_MODES[1]),
        ),
        Scorer(
            name="perplexity",
            score_key=PERPLEXITY_SCORE_KEY,
            needs_heads=False,
            mask_mode=None,
            summary="minus the base loss: the lowest-loss documents (a perplexity filter)",
            card_text="**a perplexity filter**, a control of AttentionInfluence: the score is "
            "minus the mean next-token loss of a small pretrained language model, "
            "`perplexity_score = -loss_base`, so the documents it predicts best are kept.",
            table_fields=(
                PERPLEXITY_SCORE_KEY,
                LOSS_BASE_KEY,
                SCORED_TOKENS_KEY,
                DOCUMENT_TOKENS_KEY,
            ),
            build=_perplexity,
        ),
        Scorer(
            name="random",
            score_key=RANDOM_SCORE_KEY,
            needs_heads=False,
            mask_mode=None,
            summary="uniform in [0, 1) from a seeded hash of the id (the random-subset control)",
            card_text="**a random subset**, a control of AttentionInfluence: the score is "
            "uniform in [0, 1), a hash of the seed and the document id, so the selection is a "
            "random sample of each domain that a rerun reproduces.",
            table_fields=(RANDOM_SCORE_KEY, DOCUMENT_TOKENS_KEY),
            build=_random,
        ),
        Scorer(
            name="distilled",
            score_key=DISTILLED_SCORE_KEY,
            needs_heads=False,
            mask_mode=None,
            summary="a linear model on hashed n-grams distilled from a selection's scores "
            "(ai-filters distill; --distilled-model)",
            card_text="**a distilled AttentionInfluence scorer**: a linear model on hashed word "
            "n-grams of the text, trained (`ai-filters distill`) to rank documents within their "
            "domain as AttentionInfluence scores ranked a scored sample of the corpus, then "
            "applied to every document at CPU speed; `distilled_score` is its prediction.",
            table_fields=(DISTILLED_SCORE_KEY, DOCUMENT_TOKENS_KEY),
            build=_distilled,
        ),
    )
}


def get_scorer(name: str) -> Scorer:
    """The registry entry ``name``; a ``ValueError`` naming the choices otherwise."""
    if name not in SCORERS:
        raise ValueError(f"unknown scorer '{name}'; choose one of {', '.join(SCORERS)}")
    return SCORERS[name]
