"""``heads.json``: the retrieval heads a selector model was found to have, with every head's
score and the detection settings. Reading and checking a heads file needs no torch, so the
selection folder and the Hub card read it without loading the engine.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ai_filters.engine.models import LoadedModel

HEADS_FORMAT_VERSION = 1


class HeadsFileError(ValueError):
    """A heads file is malformed or belongs to another model."""


@dataclass
class RetrievalHeads:
    """The content of ``heads.json``."""

    model: str
    model_fingerprint: str
    num_layers: int
    num_heads: int
    num_kv_heads: int
    scores: list[list[float]]
    selected: list[list[int]]
    settings: dict = field(default_factory=dict)
    format_version: int = HEADS_FORMAT_VERSION

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(path.name + ".tmp")
        staging.write_text(json.dumps(asdict(self), indent=1) + "\n")
        staging.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> RetrievalHeads:
        """A heads file: a local path or any URL datatrove reads (``s3://...``)."""
        from datatrove.io import get_datafolder

        parent, _, name = str(path).rstrip("/").rpartition("/")
        folder = get_datafolder(parent or ".")
        if not folder.isfile(name):
            raise HeadsFileError(
                f"heads file {path} does not exist; create it with 'ai-filters detect-heads'"
            )
        try:
            with folder.open(name, "rt") as file:
                data = json.load(file)
            heads = cls(**data)
        except (json.JSONDecodeError, TypeError) as error:
            raise HeadsFileError(f"{path} is not a heads file: {error}") from error
        heads._check_shape(str(path))
        return heads

    def _check_shape(self, where: str) -> None:
        rows = len(self.scores)
        if rows != self.num_layers or any(len(row) != self.num_heads for row in self.scores):
            raise HeadsFileError(f"{where}: scores are not {self.num_layers} x {self.num_heads}")
        if not self.selected:
            raise HeadsFileError(f"{where} selects no heads: there is nothing to mask")
        for layer, head in self.selected:
            if not (0 <= layer < self.num_layers and 0 <= head < self.num_heads):
                raise HeadsFileError(f"{where}: selected head [{layer}, {head}] is out of range")

    def check_model(self, loaded: LoadedModel, strict_fingerprint: bool = False) -> None:
        """Raise :class:`HeadsFileError` when these heads were not made for ``loaded``'s shape.

        With ``strict_fingerprint`` the weights must also be the ones the heads were found on.
        """
        found = (self.num_layers, self.num_heads, self.num_kv_heads)
        expected = (loaded.num_layers, loaded.num_heads, loaded.num_kv_heads)
        if found != expected:
            raise HeadsFileError(
                f"heads file was made for model '{self.model}' with (layers, heads, kv heads) = "
                f"{found}, but '{loaded.spec}' has {expected}; run 'ai-filters detect-heads "
                f"--model {loaded.spec}' to make a heads file for it"
            )
        if strict_fingerprint and self.model_fingerprint != loaded.fingerprint():
            raise HeadsFileError(
                f"heads file was made for other weights ({self.model_fingerprint[:19]}...) than "
                f"'{loaded.spec}' ({loaded.fingerprint()[:19]}...); run detect-heads again"
            )

    @property
    def selected_heads(self) -> list[tuple[int, int]]:
        return [(int(layer), int(head)) for layer, head in self.selected]

    @property
    def probe_scoring(self) -> str:
        """How the scores were computed
        (:data:`~ai_filters.engine.retrieval_scores.PROBE_SCORINGS`);
        files written before the setting existed were scored with the gold answer."""
        return self.settings.get("probe_scoring", "gold")
