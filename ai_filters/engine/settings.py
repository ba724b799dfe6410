"""Every setting of the scoring engine in one validated object.

``ai-filters score`` and ``pipelines/smollm_select.py`` take the same engine options with the
same names and meanings, build one :class:`EngineSettings` from them
(:mod:`ai_filters.engine.options`), and pass it whole: through the scorer registry and the
datatrove scorer blocks to :class:`~ai_filters.engine.scoring.ScoringEngine`, as datatrove
passes one ``MinhashConfig`` to every minhash stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ai_filters.engine.models import DTYPES
from ai_filters.engine.scoring import ScoringConfig


@dataclass(frozen=True)
class EngineSettings:
    """How the engine runs: where (``device``, ``dtype``) and how it cuts, batches and feeds
    documents (``scoring``, validated when built).

    ``device=None`` means CUDA (``cuda:<task rank % GPUs>`` in a datatrove task) when available,
    else the CPU; ``dtype=None`` bf16 on a GPU, fp32 on a CPU.
    """

    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    device: str | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype '{self.dtype}'; choose one of {', '.join(DTYPES)}")

    def with_scoring(self, **changes: object) -> EngineSettings:
        """A copy with ``changes`` applied to :attr:`scoring` (validated again)."""
        return replace(self, scoring=replace(self.scoring, **changes))
