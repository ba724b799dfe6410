"""Weak-to-strong proxy pretraining: does a selection help a small model trained from scratch?

Each *arm* is a data mix: the corpus alone, or the corpus plus a selection appended to it (the
selected documents are then seen twice: the paper's up-sampling). Every arm trains a fresh
Llama with transformers' ``Trainer`` (Accelerate underneath: CPU, one GPU, or several through
``accelerate launch``) on the same token budget, with the same WSD learning-rate schedule and
the same seeds; ``Trainer`` evaluates the mean token cross-entropy of held-out sets: held-out
documents per domain and synthetic reasoning-style text.

One module per concern:

- ``data``: documents, their tokens, the arms, packed training blocks, the token-matched
  random control;
- ``heldout``: the held-out sets (documents, synthetic reasoning problems) and their blocks;
- ``train``: sizes, ``Trainer`` settings, ``train_arm`` and ``run_experiment`` (every arm once
  per seed);
- ``summary``: mean and standard deviation over seeds, paired differences of arms with their
  intervals;
- ``report``: ``results.md`` and the loss curves.
"""

from ai_filters.proxy.data import (
    Arm,
    BlockDataset,
    TokenCache,
    pack_blocks,
    read_folder,
    token_matched_random,
    tokens_per_domain,
)
from ai_filters.proxy.heldout import (
    REASONING,
    fingerprint,
    heldout_blocks,
    local_heldout,
    reasoning_problems,
)
from ai_filters.proxy.report import (
    differences_table,
    plot_curves,
    results_markdown,
    results_table,
)
from ai_filters.proxy.summary import (
    CONFIDENCE,
    INTERVAL_METHOD,
    MEAN_HELDOUT,
    compare_arms,
    differences,
    excludes_zero,
    paired_difference,
    spread,
)
from ai_filters.proxy.train import (
    FINAL_LR_RATIO,
    SIZES,
    ProxySize,
    RunContext,
    arm_entry,
    initial_model,
    run_experiment,
    schedule_summary,
    train_arm,
    training_arguments,
    with_overrides,
    world_size,
)

__all__ = [
    "CONFIDENCE",
    "FINAL_LR_RATIO",
    "INTERVAL_METHOD",
    "MEAN_HELDOUT",
    "REASONING",
    "SIZES",
    "Arm",
    "BlockDataset",
    "ProxySize",
    "RunContext",
    "TokenCache",
    "arm_entry",
    "compare_arms",
    "differences",
    "differences_table",
    "excludes_zero",
    "fingerprint",
    "heldout_blocks",
    "initial_model",
    "local_heldout",
    "pack_blocks",
    "paired_difference",
    "plot_curves",
    "read_folder",
    "reasoning_problems",
    "results_markdown",
    "results_table",
    "run_experiment",
    "schedule_summary",
    "spread",
    "token_matched_random",
    "tokens_per_domain",
    "train_arm",
    "training_arguments",
    "with_overrides",
    "world_size",
]
