"""Which documents are held out, and in which order the others are trained on.

A document is held out when ``blake2b(salt, id)`` mapped to [0, 1) is below the held-out
share: a pure function of its id, so the split does not depend on order or sharding, stays the
same when the corpus grows, and can be recomputed anywhere from the rule (:data:`HOLDOUT_RULE`).
With ``max_train``, the training documents are the first ``max_train`` in the order of a
second hash of their id, so a smaller training set is a subset of a larger one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ai_filters.distill.scored import ScoredDocument
from ai_filters.distill.training import TrainingSettings

HOLDOUT_RULE = (
    "held out when int.from_bytes(blake2b(f'{salt}\\0{id}', digest_size=8), 'big') / 2**64 < share"
)
ORDER_SALT = "training-order"  # the salt of the training order (max_train)


def id_hash(document_id: str, salt: str) -> float:
    """``blake2b(salt, id)`` mapped to [0, 1): uniform, a pure function of both."""
    digest = hashlib.blake2b(f"{salt}\0{document_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def is_heldout(document_id: str, share: float, salt: str) -> bool:
    """Whether ``document_id`` is held out (the rule :data:`HOLDOUT_RULE` states)."""
    return id_hash(document_id, salt) < share


def split(
    documents: Sequence[ScoredDocument], settings: TrainingSettings
) -> tuple[list[ScoredDocument], list[ScoredDocument]]:
    """(training, held-out) documents; the training ones in the training order, at most
    ``settings.max_train`` of them."""
    heldout, training = [], []
    for document in documents:
        held = is_heldout(document.id, settings.heldout_share, settings.salt)
        (heldout if held else training).append(document)
    training.sort(key=lambda d: (id_hash(d.id, ORDER_SALT), d.id))
    return training[: settings.max_train], heldout
