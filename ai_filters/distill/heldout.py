"""Which documents are held out, and in which order the others are trained on.

Whole groups are held out (:mod:`ai_filters.distill.groups`): a document is held out when
``blake2b(salt, group)`` mapped to [0, 1) is below the held-out share, ``group`` its group or,
when it has none, its id. A pure function of the group, so every document of a group lands on
the same side, the split does not depend on order or sharding, stays the same when the corpus
grows, and can be recomputed anywhere from the rule (:data:`HOLDOUT_RULE`). The share is then a
share of groups: the share of documents held out varies with the groups' sizes.
With ``max_train``, the training documents are the first ``max_train`` in the order of a
second hash of their id, so a smaller training set is a subset of a larger one.
"""

from __future__ import annotations

from collections.abc import Sequence

from ai_filters.distill.scored import ScoredDocument
from ai_filters.distill.training import TrainingSettings
from ai_filters.fields import id_hash

HOLDOUT_RULE = (
    "held out when int.from_bytes(blake2b(f'{salt}\\0{group}', digest_size=8), 'big') / 2**64 "
    "< share, group the document's group, its id when it has none"
)
ORDER_SALT = "training-order"  # the salt of the training order (max_train)


def holdout_key(document: ScoredDocument) -> str:
    """What the held-out rule hashes: the document's group, its id when it has none."""
    return document.id if document.group is None else document.group


def is_heldout(key: str, share: float, salt: str) -> bool:
    """Whether the documents of ``key`` (a :func:`holdout_key`) are held out (the rule
    :data:`HOLDOUT_RULE` states)."""
    return id_hash(key, salt) < share


def split(
    documents: Sequence[ScoredDocument], settings: TrainingSettings
) -> tuple[list[ScoredDocument], list[ScoredDocument]]:
    """(training, held-out) documents, no group on both sides; the training ones in the
    training order, at most ``settings.max_train`` of them."""
    heldout, training = [], []
    for document in documents:
        held = is_heldout(holdout_key(document), settings.heldout_share, settings.salt)
        (heldout if held else training).append(document)
    training.sort(key=lambda d: (id_hash(d.id, ORDER_SALT), d.id))
    return training[: settings.max_train], heldout


def group_counts(
    training: Sequence[ScoredDocument], heldout: Sequence[ScoredDocument]
) -> dict[str, int]:
    """The groups on each side of a split (a document without a group counts as one) and the
    documents without a group."""
    return {
        "heldout_groups": len({holdout_key(d) for d in heldout}),
        "training_groups": len({holdout_key(d) for d in training}),
        "documents_without_group": sum(d.group is None for d in (*training, *heldout)),
    }
