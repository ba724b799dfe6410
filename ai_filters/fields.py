"""The names every stage shares, defined once: document fields, skip reasons, training text.

Torch-free on purpose: reading or writing a document file, a score table or a selection folder
needs these names and nothing of the model, so importing this module imports nothing but the
standard library.

Metadata fields a scorer writes on every document it scores (the method's and the controls'):

============================  ===========================================================
``attention_influence``       the method's score, ``(loss_ref - loss_base) / loss_base``
``ai_loss_base``              mean next-token loss of the selector over the scored tokens
``ai_loss_ref``               the same with the retrieval heads masked
``ai_n_tokens``               tokens scored (after truncation)
``ai_doc_tokens``             tokens of the whole document (what a selection's size counts)
``perplexity_score``          the perplexity control's score, ``-ai_loss_base``
``random_score``              the random control's score, :func:`id_hash` of the id
``distilled_score``           the distilled scorer's score
============================  ===========================================================

A document without a score carries its reason (one of :data:`SKIP_REASONS`) under
``skip_reason`` in the files of ``ai-filters score``, and under datatrove's
``filter_reason`` when a scorer block drops it.
"""

from __future__ import annotations

import hashlib

SCORE_KEY = "attention_influence"
LOSS_BASE_KEY = "ai_loss_base"
LOSS_REF_KEY = "ai_loss_ref"
SCORED_TOKENS_KEY = "ai_n_tokens"
DOCUMENT_TOKENS_KEY = "ai_doc_tokens"
PERPLEXITY_SCORE_KEY = "perplexity_score"
RANDOM_SCORE_KEY = "random_score"
DISTILLED_SCORE_KEY = "distilled_score"
# what the scoring engine writes, in this order (the reference fields only with heads)
ENGINE_FIELDS = (SCORE_KEY, LOSS_BASE_KEY, LOSS_REF_KEY, SCORED_TOKENS_KEY, DOCUMENT_TOKENS_KEY)

SKIP_REASON_KEY = "skip_reason"  # why a document of `ai-filters score` has no score
FILTER_REASON_KEY = "filter_reason"  # datatrove's field for why a filter dropped a document
SOURCE_TEXT_KEY = "source_text"  # the text a document was cut from (demo corpus, groups)

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

# the SmolLM corpus's tokenizer, which the paper's 7B runs train with
DEFAULT_TRAINING_TOKENIZER = "HuggingFaceTB/cosmo2-tokenizer"
END_OF_TEXT = "<|endoftext|>"  # appended after every document of a training stream


def id_hash(key: str, salt: str) -> float:
    """``blake2b(salt, key)`` mapped to [0, 1): uniform, a pure function of both (the random
    control's score, the distilled scorer's held-out split and training order)."""
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
