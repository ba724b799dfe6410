"""What a nanotron run is planned from: the model presets and the settings of one run.

``PRESETS`` holds each model with its default run (sizes from the paper for ``7b``, a smoke test
for ``tiny``); ``PlanSettings`` is what the user asks for, validated when built, and
:func:`ai_filters.nanotron.plan.build_config` turns it into a ``Plan``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Real
from typing import Literal

from ai_filters.console import require_integer
from ai_filters.domains import is_safe_name
from ai_filters.nanotron.schedule import LR_DECAY_STYLES
from ai_filters.nanotron.schema import LlamaConfig
from ai_filters.training import SHAPES, LlamaShape


@dataclass(frozen=True)
class ModelPreset:
    """A model and its default run: sizes from the paper for ``7b``, a smoke test for ``tiny``."""

    model: LlamaConfig
    tokens: int
    global_batch: int
    seq_len: int
    lr: float
    micro_batch_tokens: int  # a micro batch holds at most this many tokens (memory)
    checkpoint_interval: int
    zero_stage: int
    notes: tuple[str, ...]


def _smollm_llama(shape: LlamaShape) -> LlamaConfig:
    """nanotron's Llama of ``shape`` with the cosmo2 tokenizer's special tokens (id 0)."""
    return LlamaConfig(**asdict(shape), rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=0)


PRESETS = {
    "7b": ModelPreset(
        model=_smollm_llama(SHAPES["nanotron-7b"]),
        tokens=1_000_000_000_000,
        global_batch=1024,
        seq_len=8192,
        lr=4e-4,
        micro_batch_tokens=8192,
        checkpoint_interval=2000,
        zero_stage=1,
        notes=(
            "FFN (intermediate_size) 13,312: the paper's table says 8,192, but its 6.98B parameter "
            "count only comes out with 13,312 (8,192 would give 4.97B).",
            "Not given by the paper (common Llama choices): rope_theta 10,000, rms_norm_eps 1e-5, "
            "init std 0.02, AdamW betas 0.9/0.95, eps 1e-8, weight decay 0.1, clip 1.0, "
            "final LR (default 10% of peak).",
        ),
    ),
    "tiny": ModelPreset(
        model=_smollm_llama(SHAPES["nanotron-tiny"]),
        tokens=10_000_000,
        global_batch=32,
        seq_len=1024,
        lr=1e-3,
        micro_batch_tokens=16384,
        checkpoint_interval=100,
        zero_stage=0,
        notes=("Smoke test: checks data, launch and schedule end to end on 1 GPU in minutes.",),
    ),
}

ModelName = Literal["7b", "tiny"]
SELECTION_STAGES = ("all", "decay")
SelectionStage = Literal["all", "decay"]
DECAY_SELECTION_WEIGHT = 2.0  # the selection's share in the decay: W times its token share
# the whole-number sizes that are optional (None: the preset's value) and must be >= 1 when set
_SIZES = ("tokens", "global_batch", "seq_len", "max_micro_batch")


@dataclass(frozen=True)
class PlanSettings:
    """One nanotron run as asked for: data, model preset, sizes, schedule, cluster and names.

    Fields, with their defaults (for None: the value it stands for, in parentheses):

    - ``corpus_tokenized``: the tokenized full corpus (a folder of ``.ds`` files); required.
    - ``selected_tokenized``: the tokenized selection, trained on in addition to the corpus;
      None trains on the corpus alone (the baseline). Must differ from the corpus folder.
    - ``model``: the preset in ``PRESETS`` (``"7b"`` or ``"tiny"``, default ``"7b"``).
    - ``tokens``: training tokens (None: the preset's, 1e12 / 1e7 for 7b / tiny).
    - ``global_batch``: sequences per optimizer step (None: the preset's, 1024 / 32).
    - ``seq_len``: tokens per sequence (None: the preset's, 8192 / 1024).
    - ``lr``: peak learning rate (None: the preset's, 4e-4 / 1e-3).
    - ``min_lr``: final learning rate after the decay (None: ``lr`` / 10); checked against
      ``lr`` by :func:`ai_filters.nanotron.checks.validate`.
    - ``decay_style``: shape of the decay, one of ``LR_DECAY_STYLES`` (default ``"linear"``).
    - ``nodes``, ``gpus_per_node``: the cluster (default 1 node of 8 GPUs).
    - ``tp``, ``pp``: tensor and pipeline parallelism (default 1 each).
    - ``max_micro_batch``: largest micro batch in sequences (None: the preset's tokens per micro
      batch, 8k / 16k, divided by ``seq_len``).
    - ``token_counts``: tokens per folder, corpus first, one per folder (None: counted from the
      ``.ds`` files; given, the folders need not exist).
    - ``tokenizer_name``: the tokenizer when the folders' metadata names none (None: cosmo2).
    - ``run_name``: nanotron's run name (None: ``<model>-wsd-baseline`` or
      ``<model>-wsd-attention-influence``); one folder name (letters, digits, '.', '_', '-'):
      it names ``checkpoints/<run>`` and the Slurm log file.
    - ``checkpoints_path``: where checkpoints go and a relaunch resumes from (None:
      ``checkpoints/<run>``).
    - ``selection_stage``: when the selection is read (default ``"all"``: with the corpus from
      step 1, the paper's plan; ``"decay"``: the corpus alone in a stable stage, corpus and
      selection in a decay stage from the WSD decay start); ``"decay"`` needs a selection.
    - ``decay_selection_weight``: in the decay stage, the selection's weight is this many times
      its token share (None: ``DECAY_SELECTION_WEIGHT``, 2); only with ``"decay"``, > 0.

    Raises ``ValueError`` (one line) for an unknown preset or decay style, a size or learning
    rate that is not positive, a selection equal to the corpus, token counts that do not match
    the folders, an empty folder or name, or a staged plan without a selection.
    """

    corpus_tokenized: str
    selected_tokenized: str | None = None
    model: ModelName = "7b"
    tokens: int | None = None
    global_batch: int | None = None
    seq_len: int | None = None
    lr: float | None = None
    min_lr: float | None = None
    decay_style: str = "linear"
    nodes: int = 1
    gpus_per_node: int = 8
    tp: int = 1
    pp: int = 1
    max_micro_batch: int | None = None
    token_counts: tuple[int, ...] | None = None
    tokenizer_name: str | None = None
    run_name: str | None = None
    checkpoints_path: str | None = None
    selection_stage: SelectionStage = "all"
    decay_selection_weight: float | None = None

    def __post_init__(self) -> None:
        for name in ("selected_tokenized", "tokenizer_name", "run_name", "checkpoints_path"):
            if getattr(self, name) == "":
                raise ValueError(f"{name} is empty: give one or leave it unset (None)")
        if self.run_name is not None and not is_safe_name(self.run_name):
            raise ValueError(
                f"run_name {self.run_name!r} names the checkpoint folder (checkpoints/<run>) and "
                "the job's log file: use letters, digits, '.', '_' or '-' only"
            )
        if self.model not in PRESETS:
            raise ValueError(f"model {self.model!r} is not a preset; use one of {sorted(PRESETS)}")
        if self.decay_style not in LR_DECAY_STYLES:
            choices = ", ".join(LR_DECAY_STYLES)
            raise ValueError(f"decay_style {self.decay_style!r} is not one of {choices}")
        for name in ("nodes", "gpus_per_node", "tp", "pp"):
            require_integer(name, getattr(self, name), 1)
        for name in _SIZES:
            if getattr(self, name) is not None:
                require_integer(name, getattr(self, name), 1)
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        self._check_folders()
        self._check_stage()

    def _check_stage(self) -> None:
        if self.selection_stage not in SELECTION_STAGES:
            choices = ", ".join(SELECTION_STAGES)
            raise ValueError(f"selection_stage {self.selection_stage!r} is not one of {choices}")
        if self.selection_stage == "decay" and self.selected_tokenized is None:
            raise ValueError("selection_stage 'decay' needs the tokenized selection")
        weight = self.decay_selection_weight
        if weight is not None and self.selection_stage != "decay":
            raise ValueError("decay_selection_weight is only used with selection_stage 'decay'")
        if weight is not None and not (isinstance(weight, Real) and 0 < weight < math.inf):
            raise ValueError(f"decay_selection_weight must be a finite number > 0, got {weight!r}")

    @property
    def selection_weight(self) -> float:
        """The decay stage's up-weighting of the selection (``decay_selection_weight`` or 2)."""
        return self.decay_selection_weight or DECAY_SELECTION_WEIGHT

    def _check_folders(self) -> None:
        if not self.corpus_tokenized:
            raise ValueError("corpus_tokenized is empty: give the tokenized corpus folder")
        if self.selected_tokenized == self.corpus_tokenized:
            raise ValueError(
                "the selected folder is the corpus folder: pass the tokenized selection"
            )
        if self.token_counts is not None:
            if len(self.token_counts) != len(self.folders):
                raise ValueError(f"token_counts needs one count per folder ({len(self.folders)})")
            for count in self.token_counts:
                require_integer("each of token_counts", count, 1)

    @property
    def folders(self) -> list[str]:
        """The dataset folders in the blend: the corpus, then the selection when given."""
        selected = [] if self.selected_tokenized is None else [self.selected_tokenized]
        return [self.corpus_tokenized, *selected]

    @property
    def preset(self) -> ModelPreset:
        """The model preset whose values fill the unset sizes."""
        return PRESETS[self.model]
