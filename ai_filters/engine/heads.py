"""Retrieval-head detection: which (layer, query head) pairs copy the answer from the context.

Every head's retrieval score on the probes (:mod:`ai_filters.engine.retrieval_scores`, under the
``gold`` or ``generated`` scoring); the top ``top_fraction`` of all heads are the retrieval
heads, written with their scores and the detection settings to ``heads.json``. How to detect is
one frozen, validated :class:`DetectionSettings`, built once by the command line
(``ai-filters detect-heads``) or the demo and passed whole.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ai_filters.console import require_integer
from ai_filters.engine.architectures import check_supported
from ai_filters.engine.heads_file import RetrievalHeads
from ai_filters.engine.models import LoadedModel
from ai_filters.engine.probes import Probe
from ai_filters.engine.retrieval_scores import (
    DEFAULT_PROBE_SCORING,
    PROBE_SCORINGS,
    probe_scores,
)

DEFAULT_SENTENCE_SOURCE = "pydoc_data.topics"  # what heads.json records for sentences=None


# ------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class DetectionSettings:
    """How retrieval heads are detected; validated when built (``ValueError`` in one line).

    ``num_probes`` synthetic 3-shot probes of at most ``probe_tokens`` tokens each (``None``:
    ``min(4096, model context)``, the paper's length), drawn reproducibly from ``seed`` among
    the sentences of ``sentences`` (a .txt, .jsonl, .jsonl.gz or .parquet file; ``None``: the
    Python Language Reference shipped with CPython); every head is scored the ``probe_scoring``
    way and the best ``top_fraction`` of all (layer, head) pairs are kept.
    ``allow_unsupported`` runs a model the engine does not handle exactly instead of refusing it.
    """

    num_probes: int = 800
    probe_tokens: int | None = None
    top_fraction: float = 0.05
    seed: int = 0
    probe_scoring: str = DEFAULT_PROBE_SCORING
    sentences: str | None = None
    allow_unsupported: bool = False

    def __post_init__(self) -> None:
        require_integer("num_probes", self.num_probes, 1)
        if self.probe_tokens is not None:
            require_integer("probe_tokens", self.probe_tokens, 1)
        fraction = self.top_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise ValueError(f"top_fraction must be a number in (0, 1], got {fraction!r}")
        if not 0 < fraction <= 1:
            raise ValueError(f"top_fraction must be in (0, 1], got {fraction!r}")
        # random.Random(-s) draws what random.Random(s) does
        require_integer("seed", self.seed, 0)
        if self.probe_scoring not in PROBE_SCORINGS:
            raise ValueError(
                f"unknown probe scoring '{self.probe_scoring}'; "
                f"choose one of {', '.join(PROBE_SCORINGS)}"
            )
        if self.sentences is not None and not (
            isinstance(self.sentences, str) and self.sentences.strip()
        ):
            raise ValueError(f"sentences must be a file path or None, got {self.sentences!r}")
        if not isinstance(self.allow_unsupported, bool):
            raise ValueError(
                f"allow_unsupported must be True or False, got {self.allow_unsupported!r}"
            )

    @property
    def sentence_source(self) -> str:
        """Where the probe sentences come from, as ``heads.json`` records it."""
        return self.sentences or DEFAULT_SENTENCE_SOURCE


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


def detect_heads(
    loaded: LoadedModel,
    probes: Sequence[Probe],
    settings: DetectionSettings = DetectionSettings(),
    record: dict | None = None,
    progress: Callable | None = None,
) -> tuple[RetrievalHeads, list[float]]:
    """Score every head on ``probes`` the ``settings.probe_scoring`` way and keep the top
    ``settings.top_fraction``; also returns the probes' answer losses. The heads' settings are
    ``record`` plus the scoring and how many probes the scores average over (``generated``:
    those the model retrieved)."""
    scoring = settings.probe_scoring
    run = probe_scores(loaded, probes, (scoring,), progress, settings.allow_unsupported)
    scores = run.scores[scoring]
    heads = RetrievalHeads(
        model=loaded.spec,
        model_fingerprint=loaded.fingerprint(),
        num_layers=loaded.num_layers,
        num_heads=loaded.num_heads,
        num_kv_heads=loaded.num_kv_heads,
        scores=[[round(value, 6) for value in row] for row in scores.tolist()],
        selected=[list(head) for head in select_top(scores, settings.top_fraction)],
        settings=dict(
            record or {},
            top_fraction=settings.top_fraction,
            num_probes=len(probes),
            probe_scoring=scoring,
            probes_counted=run.probes_counted[scoring],
        ),
    )
    return heads, run.losses


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
    settings: DetectionSettings = DetectionSettings(),
    progress: Callable | None = None,
) -> tuple[RetrievalHeads, list[Probe], list[float]]:
    """Build the probes from ``sentence_texts`` and detect the heads as ``settings`` say;
    returns heads, probes and unmasked answer losses.

    A model the engine does not handle exactly on probes of that length is refused before any
    probe is built, unless ``settings.allow_unsupported``.
    """
    from ai_filters.engine.probes import build_probes

    max_tokens = settings.probe_tokens or min(4096, loaded.max_context)
    check_supported(loaded.model, max_tokens, settings.allow_unsupported)
    probes = build_probes(
        loaded.tokenizer, sentence_texts, settings.num_probes, max_tokens, settings.seed
    )
    record = {
        "max_tokens": max_tokens,
        "seed": settings.seed,
        "shots": 3,
        "probe_encoding": "full_text",
    }
    heads, losses = detect_heads(loaded, probes, settings, record, progress)
    return heads, probes, losses


def detect_and_save(
    loaded: LoadedModel, settings: DetectionSettings, out: Path, plot: Path | None = None
) -> tuple[RetrievalHeads, list[Probe], list[float]]:
    """Detect heads as ``settings`` say with a progress bar, write ``out`` (and the heatmap
    ``plot``), print the top heads. Returns the heads, the probes and the probes' unmasked
    answer losses."""
    from ai_filters.console import progress_bar
    from ai_filters.engine.probes import load_sentence_texts

    texts = load_sentence_texts(settings.sentences)
    bar, update = progress_bar(settings.num_probes, "probe", "retrieval probes")
    with bar:
        heads, probes, losses = find_retrieval_heads(
            loaded, texts, settings, progress=lambda tokens: update(1, tokens)
        )
    heads.settings["sentence_source"] = settings.sentence_source
    heads.save(out)
    if plot:
        plot_heads(heads, plot)
    print(f"wrote {out}" + (f" and {plot}" if plot else ""), file=sys.stderr)
    print(
        f"top heads (layer, head: retrieval score, {heads.probe_scoring} scoring over "
        f"{heads.settings['probes_counted']} of {len(probes)} probes):"
    )
    for layer, head in heads.selected_heads[:10]:
        print(f"  {layer:3d} {head:3d}: {heads.scores[layer][head]:.3f}")
    return heads, probes, losses
