"""Retrieval scores: how often each (layer, query head) copies a probe's answer from the context.

A head *copies* answer token ``t`` when its attention row of the query at ``t - 1`` (the query
that predicts token ``t``) has its argmax inside the gold value's span in the JSON context, on
a position that holds the same token id as token ``t``. Two ways to say what token ``t`` is
(:data:`PROBE_SCORINGS`):

- ``gold``: the gold answer is fed in (teacher forcing) and every probe counts; a head's score
  is the fraction of answer tokens it copies, averaged over all probes. This is the score as
  the AttentionInfluence paper defines it.
- ``generated``: the model decodes its own answer greedily, as many tokens as the gold answer
  has; a head copies a token the model produced. A probe counts only when the model retrieved
  the value (ROUGE-1 recall of its answer's tokens against the gold answer's above 0.5), and
  the score is the fraction of the gold answer's tokens copied, averaged over those probes.
  This is the retrieval-head detection of Wu et al. 2024 (arXiv 2404.15574) and its code.

Full attention maps of a 4,096-token probe in every layer would take gigabytes, so the forward
pass runs on the model's own attention kernel (SDPA for most families), wrapped by
:mod:`ai_filters.engine.masking`'s attention wrapper, which hands every layer's query and key (after
norms and rotary embeddings) to a recorder that computes only the attention logits of the
answer rows and reduces them to their argmax at once. The argmax of a row does not change under
the attention's scaling or a soft-cap (both monotonic).
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ai_filters.engine.architectures import OutputHead, check_output_logits, check_supported
from ai_filters.engine.masking import UNIFORM, AttentionPlan, attention_plans, masked_heads
from ai_filters.engine.models import LoadedModel
from ai_filters.engine.probes import Probe

PROBE_SCORINGS = ("gold", "generated")
DEFAULT_PROBE_SCORING = "gold"
RETRIEVED_RECALL = 0.5


# --------------------------------------------------------------------------- copy fractions
def copy_fraction(argmax_positions: torch.Tensor, probe: Probe) -> torch.Tensor:
    """Fraction of the answer tokens each head copies.

    ``argmax_positions[h, j]`` is the argmax key position of head ``h`` in the attention row of
    the query at ``answer_positions[j] - 1``. Returns a float tensor of shape ``[heads]``.
    """
    ids = torch.tensor(probe.input_ids, device=argmax_positions.device)
    answer_positions = torch.tensor(list(probe.answer_positions), device=argmax_positions.device)
    inside_value = (argmax_positions >= probe.value_start) & (argmax_positions < probe.value_end)
    same_token = ids[argmax_positions] == ids[answer_positions].unsqueeze(0)
    return (inside_value & same_token).float().mean(dim=1)


def copy_fraction_from_attention(attention: torch.Tensor, probe: Probe) -> torch.Tensor:
    """:func:`copy_fraction` from full attention maps ``[heads, seq, seq]`` (row = query)."""
    rows = torch.tensor([t - 1 for t in probe.answer_positions], device=attention.device)
    return copy_fraction(attention[:, rows, :].argmax(dim=-1), probe)


def rouge1_recall(answer: Sequence[int], gold: Sequence[int]) -> float:
    """Share of the gold tokens (as a multiset) that ``answer`` holds."""
    return sum((Counter(answer) & Counter(gold)).values()) / max(len(gold), 1)


# ------------------------------------------------------------------ argmax-recording attention
class _ArgmaxRecorder:
    """State shared with the registered attention function while a probe runs."""

    def __init__(self) -> None:
        self.rows: torch.Tensor | None = None
        self.argmax_by_layer: dict[int, torch.Tensor] = {}

    def record(self, layer: int, query: torch.Tensor, key: torch.Tensor) -> None:
        """Store the per-head argmax key position of the recorded query rows (batch item 0).

        ``query``: ``[1, heads, seq, dim]`` after RoPE; ``key``: ``[1, kv_heads, seq, dim]``.
        """
        rows = self.rows
        heads, kv_heads = query.shape[1], key.shape[1]
        kv_of_head = torch.arange(heads, device=query.device) // (heads // kv_heads)
        q = query[0][:, rows, :].float()  # [heads, rows, dim]
        k = key[0][kv_of_head].float()  # [heads, seq, dim] (GQA: shared kv head per group)
        logits = torch.einsum("hrd,hsd->hrs", q, k)
        future = torch.arange(k.shape[1], device=q.device)[None, :] > rows[:, None]
        logits.masked_fill_(future.unsqueeze(0), float("-inf"))
        self.argmax_by_layer[layer] = logits.argmax(dim=-1)


_RECORDER = _ArgmaxRecorder()


def _record_argmax(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor) -> None:
    if _RECORDER.rows is not None:
        _RECORDER.record(module.layer_idx, query, key)


def answer_logits(loaded: LoadedModel, hidden: torch.Tensor, probe: Probe) -> torch.Tensor:
    """Logits ``[answer tokens, vocab]`` of the answer rows (the queries at ``t - 1``) from final
    hidden states ``[1, seq, d]``, through the model's own output processing, in fp32."""
    rows = torch.tensor([t - 1 for t in probe.answer_positions], device=hidden.device)
    return OutputHead(loaded.model, torch.float32)(hidden[0, rows])


def answer_loss(logits: torch.Tensor, probe: Probe) -> float:
    """Mean cross-entropy of the probe's answer tokens from :func:`answer_logits`."""
    targets = torch.tensor(probe.input_ids[probe.answer_start :], device=logits.device)
    return torch.nn.functional.cross_entropy(logits, targets).item()


def answer_row_argmax(loaded: LoadedModel, probe: Probe) -> tuple[torch.Tensor, torch.Tensor]:
    """Per layer and head, the argmax key position of each answer row; and the answer rows'
    logits (:func:`answer_logits`).

    Returns ``argmax[layer, head, j]`` for the query at ``answer_positions[j] - 1``. The model
    must be in :func:`recording_argmax` mode.
    """
    ids = torch.tensor([probe.input_ids], device=loaded.device)
    _RECORDER.rows = torch.tensor([t - 1 for t in probe.answer_positions], device=loaded.device)
    _RECORDER.argmax_by_layer.clear()
    try:
        hidden = loaded.model.base_model(input_ids=ids).last_hidden_state
    finally:
        _RECORDER.rows = None
    argmax = torch.stack([_RECORDER.argmax_by_layer[layer] for layer in range(loaded.num_layers)])
    return argmax, answer_logits(loaded, hidden, probe)


@contextmanager
def recording_argmax(loaded: LoadedModel) -> Iterator[None]:
    """Within the block every layer's attention reports its query and key to the argmax
    recorder before its own kernel runs (:mod:`ai_filters.engine.masking`'s attention wrapper)."""
    plans = {layer: AttentionPlan(observer=_record_argmax) for layer in range(loaded.num_layers)}
    try:
        with torch.inference_mode(), attention_plans(loaded.model, plans):
            yield
    finally:
        _RECORDER.rows = None
        _RECORDER.argmax_by_layer.clear()


# ------------------------------------------------------------------------- greedy answers
def greedy_answer(loaded: LoadedModel, probe: Probe, predicted: Sequence[int]) -> tuple[int, ...]:
    """The model's greedy answer to ``probe``: as many tokens as the gold answer, decoded from
    the prompt.

    ``predicted[j]`` is the model's greedy token at answer row ``j`` with the gold answer fed
    in. Up to and including the first one that differs from the gold token it is the model's
    own answer; decoding goes on from there with the model's key-value cache.
    """
    gold = probe.input_ids[probe.answer_start :]
    agree = next(
        (j for j, (p, g) in enumerate(zip(predicted, gold, strict=True)) if p != g), len(gold)
    )
    if agree == len(gold):
        return tuple(gold)
    answer = [*gold[:agree], int(predicted[agree])]
    if len(answer) < len(gold):
        prefix = probe.input_ids[: probe.answer_start] + tuple(answer)
        answer += _decode_greedily(loaded, prefix, len(gold) - len(answer))
    return tuple(answer)


def _decode_greedily(loaded: LoadedModel, prefix: Sequence[int], steps: int) -> list[int]:
    """``steps`` greedy tokens after ``prefix`` (fp32 output layer, as :func:`answer_logits`)."""
    head = OutputHead(loaded.model, torch.float32)
    base = loaded.model.base_model
    # transformers 5.x renames the cache argument and output 'past_key_values' to 'cache'
    name = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    ids = torch.tensor([list(prefix)], device=loaded.device)
    cache = None
    tokens: list[int] = []
    with torch.inference_mode():
        while len(tokens) < steps:
            output = base(input_ids=ids, use_cache=True, **{name: cache})
            cache = output[name]
            token = head(output.last_hidden_state[0, -1:]).argmax(dim=-1)
            tokens.append(int(token))
            ids = token.view(1, 1)
    return tokens


# ------------------------------------------------------------------------------ all probes
@dataclass
class ProbeScores:
    """Retrieval scores ``[layers, heads]`` by scoring, the probes each averaged over, and every
    probe's answer loss (gold answer fed in)."""

    scores: dict[str, torch.Tensor] = field(default_factory=dict)
    probes_counted: dict[str, int] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)


def _probe_copies(
    loaded: LoadedModel, probe: Probe, scorings: Sequence[str]
) -> tuple[dict[str, torch.Tensor], float]:
    """Copy fractions ``[layers, heads]`` of one probe by scoring (``generated`` is absent when
    the model did not retrieve the value), and its gold answer loss."""
    argmax, logits = answer_row_argmax(loaded, probe)
    copies = {"gold": torch.stack([copy_fraction(row, probe) for row in argmax])}
    if "generated" in scorings:
        answer = greedy_answer(loaded, probe, logits.argmax(dim=-1).tolist())
        gold = probe.input_ids[probe.answer_start :]
        if rouge1_recall(answer, gold) > RETRIEVED_RECALL:
            own = Probe(
                probe.input_ids[: probe.answer_start] + answer,
                probe.value_start,
                probe.value_end,
                probe.answer_start,
            )
            own_argmax = argmax if answer == gold else answer_row_argmax(loaded, own)[0]
            copies["generated"] = torch.stack([copy_fraction(row, own) for row in own_argmax])
    return {name: copies[name] for name in scorings if name in copies}, answer_loss(logits, probe)


def probe_scores(
    loaded: LoadedModel,
    probes: Sequence[Probe],
    scorings: Sequence[str] = (DEFAULT_PROBE_SCORING,),
    progress: Callable | None = None,
    allow_unsupported: bool = False,
) -> ProbeScores:
    """Retrieval scores of every head under each of ``scorings`` (one pass over the probes).

    ``progress`` is called with each finished probe's token count. A model the engine does not
    handle exactly (:mod:`ai_filters.engine.architectures`; sliding windows shorter than the probes
    included) is refused unless ``allow_unsupported``. A scoring with no probe to average over
    (``generated``: the model retrieved none) raises ``ValueError``.
    """
    unknown = [name for name in scorings if name not in PROBE_SCORINGS]
    if unknown:
        raise ValueError(f"unknown probe scoring {unknown[0]!r}; choose from {PROBE_SCORINGS}")
    longest = max((len(probe.input_ids) for probe in probes), default=None)
    check_supported(loaded.model, longest, allow_unsupported)
    check_output_logits(loaded.model, allow_unsupported)
    shape = (loaded.num_layers, loaded.num_heads)
    totals = {name: torch.zeros(shape, dtype=torch.float64) for name in scorings}
    result = ProbeScores(probes_counted=dict.fromkeys(scorings, 0))
    with recording_argmax(loaded):
        for probe in probes:
            copies, loss = _probe_copies(loaded, probe, scorings)
            for name, fractions in copies.items():
                totals[name] += fractions.double().cpu()
                result.probes_counted[name] += 1
            result.losses.append(loss)
            if progress is not None:
                progress(len(probe.input_ids))
    for name, total in totals.items():
        if not result.probes_counted[name]:
            raise ValueError(
                f"the model retrieved none of the {len(probes)} probes (ROUGE-1 recall of its "
                f"greedy answer > {RETRIEVED_RECALL}): '{name}' scoring has nothing to average; "
                "use more or shorter probes, or --probe-scoring gold"
            )
        result.scores[name] = (total / result.probes_counted[name]).float()
    return result


def probe_answer_losses(
    loaded: LoadedModel,
    probes: Sequence[Probe],
    heads: Sequence[tuple[int, int]] = (),
    mode: str = UNIFORM,
) -> list[float]:
    """Answer loss of every probe (gold answer fed in), with ``heads`` masked (none: the plain
    model)."""
    losses = []
    with torch.inference_mode(), masked_heads(loaded.model, heads, mode):
        for probe in probes:
            ids = torch.tensor([probe.input_ids], device=loaded.device)
            hidden = loaded.model.base_model(input_ids=ids).last_hidden_state
            losses.append(answer_loss(answer_logits(loaded, hidden, probe), probe))
    return losses
