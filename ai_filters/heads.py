"""Retrieval-head detection: which (layer, query head) pairs copy the answer from the context.

Retrieval score of a head on one probe (docs/design.md): for every answer token at
position ``t``, take the head's attention row of the query at ``t - 1`` (the query that
predicts token ``t``); the head *copies* the token when that row's argmax lies inside the gold
value's span in the JSON context and holds the same token id as token ``t``. The score is the
fraction of answer tokens copied, averaged over probes. The top ``top_fraction`` of all heads
are the retrieval heads.

Full attention maps of a 4,096-token probe in every layer would take gigabytes, so the forward
pass runs on the model's own attention kernel (SDPA for most families), wrapped by
:mod:`ai_filters.masking`'s attention wrapper, which hands every layer's query and key (after
norms and rotary embeddings) to a recorder that computes only the attention logits of the
answer rows and reduces them to their argmax at once. The argmax of a row does not change under
the attention's scaling or a soft-cap (both monotonic).
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ai_filters.architectures import OutputHead, check_output_logits, check_supported
from ai_filters.masking import AttentionPlan, attention_plans, masked_heads
from ai_filters.models import LoadedModel
from ai_filters.probes import Probe

HEADS_FORMAT_VERSION = 1


# --------------------------------------------------------------------------- retrieval score
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


def answer_loss(loaded: LoadedModel, hidden: torch.Tensor, probe: Probe) -> float:
    """Mean cross-entropy of the probe's answer tokens from final hidden states ``[1, seq, d]``,
    through the model's own output processing (in fp32)."""
    rows = torch.tensor([t - 1 for t in probe.answer_positions], device=hidden.device)
    targets = torch.tensor(probe.input_ids[probe.answer_start :], device=hidden.device)
    logits = OutputHead(loaded.model, torch.float32)(hidden[0, rows])
    return torch.nn.functional.cross_entropy(logits, targets).item()


def answer_row_argmax(loaded: LoadedModel, probe: Probe) -> tuple[torch.Tensor, float]:
    """Per layer and head, the argmax key position of each answer row; and the answer loss.

    Returns ``argmax[layer, head, j]`` for the query at ``answer_positions[j] - 1``. The model
    must be in :func:`recording_argmax` mode.
    """
    ids = torch.tensor([probe.input_ids], device=loaded.device)
    _RECORDER.rows = torch.tensor([t - 1 for t in probe.answer_positions], device=loaded.device)
    _RECORDER.argmax_by_layer.clear()
    hidden = loaded.model.base_model(input_ids=ids).last_hidden_state
    argmax = torch.stack([_RECORDER.argmax_by_layer[layer] for layer in range(loaded.num_layers)])
    return argmax, answer_loss(loaded, hidden, probe)


@contextmanager
def recording_argmax(loaded: LoadedModel) -> Iterator[None]:
    """Within the block every layer's attention reports its query and key to the argmax
    recorder before its own kernel runs (:mod:`ai_filters.masking`'s attention wrapper)."""
    plans = {layer: AttentionPlan(observer=_record_argmax) for layer in range(loaded.num_layers)}
    try:
        with torch.inference_mode(), attention_plans(loaded.model, plans):
            yield
    finally:
        _RECORDER.rows = None
        _RECORDER.argmax_by_layer.clear()


def probe_scores(
    loaded: LoadedModel,
    probes: Sequence[Probe],
    progress: Callable | None = None,
    allow_unsupported: bool = False,
) -> tuple[torch.Tensor, list[float]]:
    """Retrieval scores ``[layers, heads]`` averaged over ``probes``, and each probe's answer loss.

    ``progress`` is called with each finished probe's token count. A model the engine does not
    handle exactly (:mod:`ai_filters.architectures`; sliding windows shorter than the probes
    included) is refused unless ``allow_unsupported``.
    """
    longest = max((len(probe.input_ids) for probe in probes), default=None)
    check_supported(loaded.model, longest, allow_unsupported)
    check_output_logits(loaded.model, allow_unsupported)
    totals = torch.zeros(loaded.num_layers, loaded.num_heads, dtype=torch.float64)
    losses: list[float] = []
    with recording_argmax(loaded):
        for probe in probes:
            argmax, loss = answer_row_argmax(loaded, probe)
            for layer in range(loaded.num_layers):
                totals[layer] += copy_fraction(argmax[layer], probe).double().cpu()
            losses.append(loss)
            if progress is not None:
                progress(len(probe.input_ids))
    return (totals / max(len(probes), 1)).float(), losses


def probe_answer_losses(
    loaded: LoadedModel,
    probes: Sequence[Probe],
    heads: Sequence[tuple[int, int]] = (),
    mode: str = "uniform",
) -> list[float]:
    """Answer loss of every probe, with ``heads`` masked (none: the plain model)."""
    losses = []
    with torch.inference_mode(), masked_heads(loaded.model, heads, mode):
        for probe in probes:
            ids = torch.tensor([probe.input_ids], device=loaded.device)
            hidden = loaded.model.base_model(input_ids=ids).last_hidden_state
            losses.append(answer_loss(loaded, hidden, probe))
    return losses


# ------------------------------------------------------------------------------ selection
def select_top(scores: torch.Tensor, top_fraction: float) -> list[tuple[int, int]]:
    """The best ``ceil(top_fraction * layers * heads)`` heads, best first (ties: lower index)."""
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top fraction must be in (0, 1], got {top_fraction}")
    count = max(1, math.ceil(top_fraction * scores.numel() - 1e-9))
    flat = scores.flatten().tolist()
    order = sorted(range(len(flat)), key=lambda index: (-flat[index], index))[:count]
    heads_per_layer = scores.shape[1]
    return [(index // heads_per_layer, index % heads_per_layer) for index in order]


def random_other_heads(
    selected: Sequence[tuple[int, int]], num_layers: int, num_heads: int, seed: int = 0
) -> list[tuple[int, int]]:
    """As many heads as ``selected``, drawn at random from the heads not in it (the control)."""
    chosen = set(map(tuple, selected))
    every_head = [(layer, head) for layer in range(num_layers) for head in range(num_heads)]
    others = [pair for pair in every_head if pair not in chosen]
    return random.Random(seed).sample(others, len(chosen))


# ------------------------------------------------------------------------------ heads file
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


def detect_heads(
    loaded: LoadedModel,
    probes: Sequence[Probe],
    top_fraction: float = 0.05,
    settings: dict | None = None,
    progress: Callable | None = None,
    allow_unsupported: bool = False,
) -> tuple[RetrievalHeads, list[float]]:
    """Score every head on ``probes`` and keep the top fraction; also returns answer losses."""
    scores, losses = probe_scores(loaded, probes, progress, allow_unsupported)
    heads = RetrievalHeads(
        model=loaded.spec,
        model_fingerprint=loaded.fingerprint(),
        num_layers=loaded.num_layers,
        num_heads=loaded.num_heads,
        num_kv_heads=loaded.num_kv_heads,
        scores=[[round(value, 6) for value in row] for row in scores.tolist()],
        selected=[list(head) for head in select_top(scores, top_fraction)],
        settings=dict(settings or {}, top_fraction=top_fraction, num_probes=len(probes)),
    )
    return heads, losses


def plot_heads(heads: RetrievalHeads, path: str | Path) -> None:
    """Heatmap of retrieval scores (layers x heads) with the selected heads outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = torch.tensor(heads.scores)
    width = max(4.0, 0.45 * heads.num_heads + 2)
    fig, axis = plt.subplots(figsize=(width, max(4.0, 0.22 * heads.num_layers + 1.5)))
    image = axis.imshow(scores.numpy(), aspect="auto", cmap="viridis", origin="lower")
    for layer, head in heads.selected:
        axis.add_patch(
            plt.Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5)
        )
    axis.set_xlabel("query head")
    axis.set_ylabel("layer")
    axis.set_title(f"retrieval scores: {heads.model}\n(red: top {len(heads.selected)} heads)")
    fig.colorbar(image, ax=axis, label="fraction of answer tokens copied")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def find_retrieval_heads(
    loaded: LoadedModel,
    sentence_texts: Sequence[str],
    num_probes: int = 800,
    max_tokens: int | None = None,
    top_fraction: float = 0.05,
    seed: int = 0,
    progress: Callable | None = None,
    allow_unsupported: bool = False,
) -> tuple[RetrievalHeads, list[Probe], list[float]]:
    """Build the probes and detect the heads; returns heads, probes and unmasked answer losses.

    ``max_tokens`` defaults to ``min(4096, model context)``, the paper's probe length. A model
    the engine does not handle exactly on probes of that length is refused before any probe is
    built, unless ``allow_unsupported``.
    """
    from ai_filters.probes import build_probes

    max_tokens = max_tokens or min(4096, loaded.max_context)
    check_supported(loaded.model, max_tokens, allow_unsupported)
    probes = build_probes(loaded.tokenizer, sentence_texts, num_probes, max_tokens, seed)
    settings = {"max_tokens": max_tokens, "seed": seed, "shots": 3}
    heads, losses = detect_heads(
        loaded, probes, top_fraction, settings, progress, allow_unsupported
    )
    return heads, probes, losses


def detect_and_save(
    loaded: LoadedModel,
    out: Path,
    plot: Path | None,
    num_probes: int,
    probe_tokens: int | None,
    top_fraction: float = 0.05,
    seed: int = 0,
    sentences: str | None = None,
    allow_unsupported: bool = False,
) -> tuple[RetrievalHeads, list[Probe], list[float]]:
    """Detect heads with a progress bar, write ``out`` (and the heatmap ``plot``), print the
    top heads. Returns the heads, the probes and the probes' unmasked answer losses."""
    from ai_filters.console import progress_bar
    from ai_filters.probes import load_sentence_texts

    texts = load_sentence_texts(sentences)
    bar, update = progress_bar(num_probes, "probe", "retrieval probes")
    with bar:
        heads, probes, losses = find_retrieval_heads(
            loaded,
            texts,
            num_probes,
            probe_tokens,
            top_fraction,
            seed,
            progress=lambda tokens: update(1, tokens),
            allow_unsupported=allow_unsupported,
        )
    heads.settings["sentence_source"] = sentences or "pydoc_data.topics"
    heads.save(out)
    if plot:
        plot_heads(heads, plot)
    print(f"wrote {out}" + (f" and {plot}" if plot else ""), file=sys.stderr)
    print("top heads (layer, head: retrieval score):")
    for layer, head in heads.selected_heads[:10]:
        print(f"  {layer:3d} {head:3d}: {heads.scores[layer][head]:.3f}")
    return heads, probes, losses
