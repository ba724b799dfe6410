"""nanotron launch configs for the paper's 7B runs: the baseline and corpus + selection.

    ai-filters nanotron-config --corpus-tokenized tok/corpus --selected-tokenized tok/selected \\
        --out runs/ai_7b.yaml --nodes 64 --gpus-per-node 8 --tp 2

The selected documents are trained on *in addition to* the full corpus (the paper's setup): both
folders are blended with weights proportional to their token counts, read from the ``.ds`` files.

One module per concern:

- ``schema``: nanotron main's config dataclasses, field for field;
- ``loading``: ``load_config``, the strict loader, ``config_to_dict`` and ``NanotronConfigError``;
- ``checks``: ``validate``, the rules nanotron asserts and the ones it gets silently wrong;
- ``data``: the tokenized ``.ds`` folders a run reads;
- ``schedule``: nanotron's learning rate per step (``lr_at``) and its plot;
- ``settings``: the model presets and ``PlanSettings``, what a run is planned from;
- ``plan``: ``build_config``, which plans a run from its settings as a ``Plan``;
- ``writer``: the YAML, the resumable Slurm launch script, and the configs shipped in the
  repository;
- ``preflight``: ``ai-filters nanotron-check``, the config and what the run reads of each folder.
"""

from ai_filters.nanotron.checks import global_batch_size, validate
from ai_filters.nanotron.data import TokenizedFolder, read_tokenized_folder, token_size_for
from ai_filters.nanotron.loading import NanotronConfigError, config_to_dict, load_config
from ai_filters.nanotron.plan import Plan, build_config, split_batch
from ai_filters.nanotron.preflight import Preflight, preflight
from ai_filters.nanotron.schedule import LR_DECAY_STYLES, LR_WARMUP_STYLES, lr_at, plot_schedule
from ai_filters.nanotron.schema import NANOTRON_COMMIT, NanotronConfig
from ai_filters.nanotron.settings import PRESETS, PlanSettings
from ai_filters.nanotron.writer import (
    LaunchSettings,
    write_config,
    write_launch_script,
    write_plan,
    write_shipped,
)

__all__ = [
    "LR_DECAY_STYLES",
    "LR_WARMUP_STYLES",
    "LaunchSettings",
    "NANOTRON_COMMIT",
    "PRESETS",
    "NanotronConfig",
    "NanotronConfigError",
    "Plan",
    "PlanSettings",
    "Preflight",
    "TokenizedFolder",
    "build_config",
    "config_to_dict",
    "global_batch_size",
    "load_config",
    "lr_at",
    "plot_schedule",
    "preflight",
    "read_tokenized_folder",
    "split_batch",
    "token_size_for",
    "validate",
    "write_config",
    "write_launch_script",
    "write_plan",
    "write_shipped",
]
