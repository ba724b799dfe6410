"""The engine's command-line options (shared by ``ai-filters score`` and
``pipelines/smollm_select.py``) and the :class:`EngineSettings` they give."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

from ai_filters.console import OptionTarget
from ai_filters.engine.kernels import ATTENTION_KERNELS
from ai_filters.engine.masking import MASK_MODES, UNIFORM
from ai_filters.engine.models import DTYPES
from ai_filters.engine.scoring import ScoringConfig
from ai_filters.engine.settings import EngineSettings


def engine_settings_from_options(options: Mapping[str, object]) -> EngineSettings:
    """The settings the options of :func:`add_device_options` and :func:`add_engine_options`
    give; an option that is absent or ``None`` keeps :class:`ScoringConfig`'s default. Raises
    ``ValueError`` naming a bad value."""
    given = {
        f.name: options[f.name] for f in fields(ScoringConfig) if options.get(f.name) is not None
    }
    return EngineSettings(ScoringConfig(**given), options.get("device"), options.get("dtype"))


def add_device_options(parser: OptionTarget) -> None:
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


def add_engine_options(
    parser: OptionTarget,
    max_tokens_default: str = "min(4096, context)",
) -> None:
    """The engine options (besides :func:`add_device_options`), into ``parser`` (an argparse
    parser or argument group). Every default is ``None``: :func:`engine_settings_from_options`
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
        f"the heads' outputs zeroed, an ablation (default: {UNIFORM})",
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
