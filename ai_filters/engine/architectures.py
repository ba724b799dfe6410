"""The selector architectures the engine scores exactly, and what it must know about each.

The engine masks heads inside transformers' attention interface (:mod:`ai_filters.engine.masking`),
after every norm and rotary embedding, so masking is exact for any model whose attention goes
through that interface. What still differs between families, and is listed here:

- what the model's forward does to the output layer's logits before its loss: Granite divides
  them by ``logits_scaling``, Cohere multiplies them by ``logit_scale``, Gemma 2/3 soft-cap
  them at ``final_logit_softcapping``; the others use them as they are;
- the attention kernel that computes the model's own attention: SDPA, except where attention
  logits are soft-capped (Gemma 2), which only the model's own eager attention does;
- sliding-window attention: exact only while every sequence fits in the window (a query then
  sees its whole prefix), so longer sequences are refused;
- rotary scaling whose frequencies depend on the sequence length (``dynamic``: beyond
  ``max_position_embeddings``; ``longrope``: beyond ``original_max_position_embeddings``):
  transformers picks them from the largest position of the whole batch, so a document's score
  would depend on its batch partners. Rows that could reach that length are refused; below it
  the frequencies are those of every document alone. The other rope types of transformers 5
  (``default``, ``linear``, ``yarn``, ``llama3``, ``proportional``) do not depend on it.

Every family on :data:`SUPPORTED` is tested on a tiny random-weight model built from its
configuration (``tests/engine/test_architectures.py``) against an independent implementation.
Anything else is refused in one line naming it, unless the caller accepts the risk
(``allow_unsupported``): the engine then runs it the Llama way, and the run-time checks
(:func:`check_output_logits`, and masking's check that the wrapped attention ran in every
masked layer) still refuse what they can see is wrong.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ai_filters.engine.numerics import UNIT_ROUNDOFF, dot_rtol


class UnsupportedArchitectureError(ValueError):
    """The model is not one the engine scores exactly; the message names it and the way out."""


RISK_OPTION = "--allow-unsupported-architecture"


def _as_is(config, logits: torch.Tensor) -> torch.Tensor:
    return logits


def _divide_by_logits_scaling(config, logits: torch.Tensor) -> torch.Tensor:
    return logits / config.logits_scaling


def _multiply_by_logit_scale(config, logits: torch.Tensor) -> torch.Tensor:
    return logits * config.logit_scale


def _final_softcap(config, logits: torch.Tensor) -> torch.Tensor:
    cap = getattr(config, "final_logit_softcapping", None)
    if cap is None:
        return logits
    return torch.tanh(logits / cap) * cap


@dataclass(frozen=True)
class Family:
    """What the engine applies for one ``model_type``: ``logits(config, logits)`` is what the
    family's ``ForCausalLM.forward`` does after its output layer."""

    name: str
    logits: Callable[[object, torch.Tensor], torch.Tensor] = _as_is


SUPPORTED: dict[str, Family] = {
    family.name: family
    for family in (
        Family("llama"),  # also SmolLM / SmolLM2
        Family("mistral"),
        Family("qwen2"),
        Family("qwen3"),
        Family("olmo2"),
        Family("olmo3"),
        Family("granite", _divide_by_logits_scaling),
        Family("gemma"),
        Family("gemma2", _final_softcap),
        Family("gemma3_text", _final_softcap),
        Family("cohere", _multiply_by_logit_scale),
        Family("cohere2", _multiply_by_logit_scale),
        Family("phi3"),
        Family("smollm3"),
        Family("starcoder2"),
    )
}
UNKNOWN = Family("unknown")


def model_type(config) -> str:
    return str(getattr(config, "model_type", "") or "unknown")


def architecture_name(model: torch.nn.Module) -> str:
    """The model's ``model_type`` and class, as in ``'gpt2' (GPT2LMHeadModel)``."""
    return f"'{model_type(model.config)}' ({type(model).__name__})"


def family_of(config) -> Family:
    """The family of ``config``; :data:`UNKNOWN` (logits used as they are) when not listed."""
    return SUPPORTED.get(model_type(config), UNKNOWN)


def sliding_window(config) -> int | None:
    """The attention window of the model's windowed layers, ``None`` when it has none."""
    window = getattr(config, "sliding_window", None)
    if window is None or getattr(config, "use_sliding_window", True) is False:
        return None
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return None
    return int(window)


def attention_implementation(config) -> str:
    """The kernel that computes the model's own attention: ``eager`` where attention logits are
    soft-capped (SDPA cannot), ``sdpa`` otherwise."""
    return "eager" if getattr(config, "attn_logit_softcapping", None) is not None else "sdpa"


def length_dependent_rope(config) -> dict[str, int]:
    """The model's rope types whose frequencies change with the sequence length, each with the
    longest sequence (the largest position + 1) that still gets the frequencies of position 0
    alone; empty when none does. Per-layer-type rope settings (Gemma 3, OLMo3) are all read."""
    parameters = getattr(config, "rope_parameters", None) or {}
    groups = [parameters] if "rope_type" in parameters else list(parameters.values())
    limits: dict[str, int] = {}
    for group in groups:
        rope = str(group.get("rope_type", "default")) if isinstance(group, dict) else "default"
        if rope == "longrope":
            limit = int(group["original_max_position_embeddings"])
        elif "dynamic" in rope:  # transformers rescales any rope type named so
            limit = int(config.max_position_embeddings)
        else:
            continue
        limits[rope] = min(limit, limits.get(rope, limit))
    return limits


def unsupported_reasons(
    model: torch.nn.Module, sequence_length: int | None, positions: int | None = None
) -> list[str]:
    """Why the engine would not score ``model`` exactly on sequences of up to
    ``sequence_length`` tokens fed in rows of up to ``positions`` positions (default
    ``sequence_length``; longer when documents are packed); ``None``: the length is not known
    yet. Empty when it would."""
    config = model.config
    name = architecture_name(model)
    reasons = []
    if model_type(config) not in SUPPORTED:
        reasons.append(f"architecture {name} is not on the supported list ({', '.join(SUPPORTED)})")
    if getattr(config, "use_bidirectional_attention", False) or not getattr(
        config, "is_causal", True
    ):
        reasons.append(f"architecture {name} is configured for bidirectional attention")
    window = sliding_window(config)
    if window is not None and sequence_length is not None and sequence_length > window:
        reasons.append(
            f"architecture {name} uses sliding-window attention of {window} tokens, shorter than "
            f"the {sequence_length}-token sequences asked for (use at most {window} tokens)"
        )
    positions = positions or sequence_length
    for rope, limit in length_dependent_rope(config).items():
        if positions is not None and positions > limit:
            reasons.append(
                f"architecture {name} uses '{rope}' rotary scaling, whose frequencies change with "
                f"the longest sequence of a batch beyond {limit} tokens, and rows of {positions} "
                f"tokens are asked for (keep --max-tokens, and --pack-tokens when packing, at "
                f"most {limit})"
            )
    return reasons


def check_supported(
    model: torch.nn.Module,
    sequence_length: int | None,
    allow_unsupported: bool = False,
    positions: int | None = None,
) -> None:
    """Refuse, in one line, a model the engine would not score exactly on sequences of up to
    ``sequence_length`` tokens in rows of up to ``positions`` (:func:`unsupported_reasons`).

    With ``allow_unsupported`` the reasons become a :class:`UserWarning` and the run goes on.
    """
    reasons = unsupported_reasons(model, sequence_length, positions)
    if not reasons:
        return
    message = "; ".join(reasons)
    if allow_unsupported:
        warnings.warn(f"{message}; scoring it anyway ({RISK_OPTION})", stacklevel=2)
        return
    raise UnsupportedArchitectureError(
        f"{message}; pass {RISK_OPTION} to score it anyway at your own risk"
    )


class OutputHead:
    """The logits the model's own forward computes from final hidden states.

    The output layer runs in ``dtype`` (for example fp32 under a bf16 model; the weights are
    converted once), then the family's post-processing follows (:class:`Family`).
    """

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype | None = None) -> None:
        head = model.get_output_embeddings()
        self.config = model.config
        self.family = family_of(model.config)
        self.dtype = dtype or head.weight.dtype
        self.weight = head.weight.to(self.dtype)
        self.bias = None if head.bias is None else head.bias.to(self.dtype)

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = torch.nn.functional.linear(hidden.to(self.dtype), self.weight, self.bias)
        return self.family.logits(self.config, logits)


def output_logits(model: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """:class:`OutputHead` of ``model`` in its own dtype, applied to ``hidden``."""
    return OutputHead(model)(hidden)


def logits_tolerance(model: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Per logit, how far two evaluations of :func:`output_logits` on ``hidden`` may differ by
    rounding alone (:mod:`ai_filters.engine.numerics`).

    Each output-layer sum ``w . h`` carries :func:`~ai_filters.engine.numerics.dot_rtol` of the sum
    of its terms' magnitudes (at most ``|w| |h|``, plus the bias); with up to two more
    roundings of the raw logit (``u`` each: a conversion, the post-processing's first step)
    that error is carried through the family's post-processing, whose last steps round at
    most twice more (``u`` of the final logit each). Two evaluations: twice that.
    """
    head = model.get_output_embeddings()
    dtype = head.weight.dtype
    unit = UNIT_ROUNDOFF[dtype]
    weight_norms = torch.cat(
        [rows.float().norm(dim=1) for rows in head.weight.detach().split(16384)]
    ).double()
    magnitudes = hidden.double().norm(dim=-1, keepdim=True) * weight_norms
    if head.bias is not None:
        magnitudes = magnitudes + head.bias.detach().double().abs()
    raw = torch.nn.functional.linear(hidden, head.weight, head.bias).double()
    error = dot_rtol(hidden.shape[-1], dtype) * magnitudes + 2 * unit * raw.abs()
    family, config = family_of(model.config), model.config
    value = family.logits(config, raw)
    spread = torch.maximum(
        (family.logits(config, raw + error) - value).abs(),
        (family.logits(config, raw - error) - value).abs(),
    )
    return 2 * (spread + 2 * unit * value.abs())


def check_output_logits(model: torch.nn.Module, allow_unsupported: bool = False) -> None:
    """Compare :func:`output_logits` with the model's own forward on a few tokens.

    Both compute the output layer in the model's dtype on the same hidden states, so they agree
    within :func:`logits_tolerance` unless the forward post-processes its logits in a way the
    family table does not know: then the model is refused (or, with ``allow_unsupported``,
    warned about).
    """
    config = model.config
    device = next(model.parameters()).device
    ids = torch.arange(8, device=device).remainder(config.vocab_size).unsqueeze(0)
    with torch.inference_mode():
        expected = model(input_ids=ids, use_cache=False).logits.double()
        hidden = model.base_model(input_ids=ids, use_cache=False).last_hidden_state
        actual = output_logits(model, hidden).double()
        tolerance = logits_tolerance(model, hidden)
    if bool(((actual - expected).abs() <= tolerance).all()):
        return
    message = (
        f"the logits of architecture {architecture_name(model)} are not its output layer's "
        "as the engine computes them (its forward post-processes them in an unknown way)"
    )
    if allow_unsupported:
        warnings.warn(message, stacklevel=2)
        return
    raise UnsupportedArchitectureError(f"{message}; pass {RISK_OPTION} to score it anyway")
