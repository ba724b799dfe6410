"""Every setting of the scoring engine in one validated object, and its command-line options.

``ai-filters score`` and ``pipelines/smollm_select.py`` take the same engine options with the
same names and meanings (:func:`add_engine_options`), build one :class:`EngineSettings` from
them (:meth:`EngineSettings.from_options`), and pass it whole: through the scorer registry and
the datatrove scorer blocks to :class:`~ai_filters.engine.scoring.ScoringEngine`, as datatrove
passes
one ``MinhashConfig`` to every minhash stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from ai_filters.engine.kernels import ATTENTION_KERNELS
from ai_filters.engine.masking import MASK_MODES
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

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> EngineSettings:
        """The settings named in ``options`` (parsed options as a mapping, e.g. ``vars(args)``;
        keys as :func:`add_engine_options` names them); missing or ``None`` keys keep their
        defaults. Raises ``ValueError`` naming a bad value."""

        def given(name: str) -> bool:
            return options.get(name) is not None

        scoring = ScoringConfig(
            **{f.name: options[f.name] for f in fields(ScoringConfig) if given(f.name)}
        )
        return cls(scoring, options.get("device"), options.get("dtype"))

    def with_scoring(self, **changes: object) -> EngineSettings:
        """A copy with ``changes`` applied to :attr:`scoring` (validated again)."""
        return replace(self, scoring=replace(self.scoring, **changes))


def add_device_options(parser) -> None:
    """``--device``, ``--dtype`` and ``--allow-unsupported-architecture`` (every command that
    loads a model for the engine or for head detection takes them)."""
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument(
        "--dtype",
        default=None,
        choices=list(DTYPES),
        help="weights dtype (default: bfloat16 on GPU, float32 on CPU); the output layer and "
        "the loss always run in float32",
    )
    parser.add_argument(
        "--allow-unsupported-architecture",
        action="store_true",
        default=None,
        help="run a model the engine does not list as exact (or one whose sliding window is "
        "shorter than the sequences) instead of refusing it: the Llama way, at your own risk",
    )


def add_engine_options(parser, max_tokens_default: str = "min(4096, context)") -> None:
    """The engine options (besides :func:`add_device_options`), into ``parser`` (an argparse
    parser or argument group). Every default is ``None``: :meth:`EngineSettings.from_options`
    then keeps :class:`~ai_filters.engine.scoring.ScoringConfig`'s own."""
    defaults = ScoringConfig()
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help=f"tokens per sequence; longer documents are truncated (default: {max_tokens_default})",
    )
    parser.add_argument(
        "--windows",
        action="store_true",
        default=None,
        help="score long documents in consecutive windows of --max-tokens, token-weighted, "
        "instead of truncating them",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"rows (sequences) per forward pass, at most (default: {defaults.batch_size})",
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=None,
        help="padded tokens per forward pass, at most (one long document may exceed); "
        "default: max(max_tokens, 1024) on a CPU, 32768 on a GPU",
    )
    parser.add_argument(
        "--packing",
        dest="packing",
        action="store_true",
        default=None,
        help="several documents per row, each attending only to itself, instead of one per row "
        "padded to the longest (default: on a GPU; off on a CPU)",
    )
    parser.add_argument(
        "--no-packing", dest="packing", action="store_false", default=None, help="one per row"
    )
    parser.add_argument(
        "--pack-tokens",
        type=int,
        default=None,
        help="tokens per packed row (default: --max-tokens)",
    )
    parser.add_argument(
        "--mask-mode",
        default=None,
        choices=MASK_MODES,
        help="uniform: the method (the heads' attention spread evenly over the prefix); zero: "
        f"the heads' outputs zeroed, an ablation (default: {MASK_MODES[0]})",
    )
    parser.add_argument(
        "--attention-kernel",
        default=None,
        choices=ATTENTION_KERNELS,
        help="attention for packed rows: flex (torch's flex_attention, skipping the blocks of "
        "other documents), sdpa (the model's own kernel with a block-diagonal mask), or auto: "
        "flex on CUDA where the model supports it, sdpa otherwise (default: auto)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="compile the decoder layers with torch.compile (pays off on long runs on a GPU)",
    )
