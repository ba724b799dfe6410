"""Distil a selection's scores into a fast text model (``ai-filters distill``).

Scoring costs the selector two forward passes per token. The cheap way to select from a huge
corpus is to score a sample with the selector, train a small text model to rank documents as
the scores do, and apply that model to everything. This package trains it on the scored
documents of a selection folder (``OUT/scored/<domain>/*.jsonl.gz``), holds out a share of them
(whole groups of documents from one source) to measure agreement, and writes the model folder
that the ``distilled`` scorer applies
(:class:`ai_filters.blocks.DistilledScorer`).

**The model.** Per domain, a ridge regression of the document's rank within its domain on
hashed word 1-2-grams of the text and a few statistics of it; a pooled model, trained on every
domain, scores documents of any domain without a model of its own. The selection keeps the top
fraction of each domain by the prediction, as for any scorer.

**Why scikit-learn, not fastText.** fastText is what datatrove's ``FastTextClassifierFilter``
and DCLM use, but it does not install cleanly from a wheel: ``fasttext`` 0.9.3 on PyPI is a
source release (a C++ build on every fresh Linux machine; its one wheel is for CPython 3.9 on
ARM macOS) and its repository is archived; ``fasttext-wheel`` breaks at prediction time under
numpy 2 (``np.array(..., copy=False)``); ``fasttext-numpy2-wheel`` 0.9.2 has wheels for
CPython 3.8 to 3.12 only, none for ARM macOS. scikit-learn
ships official wheels for every supported CPython on Linux, macOS and Windows, works with
numpy 1 and 2, and needs scipy, already a dependency. Its hashing vectorizer is stateless, so
a model is plain data (the settings and a weights array, no pickle) and prediction is a sparse
dot product.

One module per concern:

- ``features``: what the model sees of a text (hashed n-grams, text statistics);
- ``scored``: a selection's scored documents and what scored them;
- ``groups``: which documents belong together (the group key of the held-out split);
- ``heldout``: the held-out rule (whole groups) and the training order;
- ``model``: :class:`DistilledModel`, per-domain and pooled linear models, prediction;
- ``training``: :class:`TrainingSettings`, the rank targets, :func:`fit`;
- ``agreement``: top-fraction Jaccard and Spearman against the teacher;
- ``folder``: :func:`distill`, the model folder (:func:`save`, :func:`load_model`).
"""

from ai_filters.distill.agreement import agreement
from ai_filters.distill.features import STATISTICS, Features, text_statistics
from ai_filters.distill.folder import (
    FORMAT_VERSION,
    HELDOUT_IDS_FILE,
    HELDOUT_TABLE,
    RECORD_FILE,
    TRAINING_IDS_FILE,
    WEIGHTS_FILE,
    DistillResult,
    check_folder,
    distill,
    load_model,
    read_ids,
    read_record,
    save,
)
from ai_filters.distill.groups import DEFAULT_GROUP_KEY, NO_GROUPS, URL_HOST, group_of
from ai_filters.distill.heldout import (
    HOLDOUT_RULE,
    group_counts,
    holdout_key,
    is_heldout,
    split,
)
from ai_filters.distill.model import POOLED, DistilledModel
from ai_filters.distill.scored import ScoredDocument, Teacher, read_scored, read_teacher
from ai_filters.distill.training import TrainingSettings, fit, rank_targets

__all__ = [
    "DEFAULT_GROUP_KEY",
    "FORMAT_VERSION",
    "HELDOUT_IDS_FILE",
    "HELDOUT_TABLE",
    "HOLDOUT_RULE",
    "NO_GROUPS",
    "POOLED",
    "RECORD_FILE",
    "STATISTICS",
    "TRAINING_IDS_FILE",
    "URL_HOST",
    "WEIGHTS_FILE",
    "DistillResult",
    "DistilledModel",
    "Features",
    "ScoredDocument",
    "Teacher",
    "TrainingSettings",
    "agreement",
    "check_folder",
    "distill",
    "fit",
    "group_counts",
    "group_of",
    "holdout_key",
    "is_heldout",
    "load_model",
    "rank_targets",
    "read_ids",
    "read_record",
    "read_scored",
    "read_teacher",
    "save",
    "split",
    "text_statistics",
]
