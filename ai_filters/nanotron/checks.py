"""The rules a nanotron config must follow: what nanotron asserts at start-up, what stops it
later, and what it gets silently wrong (no ``min_decay_lr`` means no decay; no dataset weights
blend folders equally; no ``resume_checkpoint_path`` restarts a requeued job at step 0).

``validate`` reports every problem at once, each with its fix, in a ``NanotronConfigError``.
The rules about data follow nanotron main (huggingface/nanotron@2411b022): the reader
``OldTokenizedBytesFolderDataset`` (see :mod:`ai_filters.nanotron.data`), the data stages
(``run_train.py``, ``get_dataloader``: the last stage only is built, so a config with several
stages is the relaunch that starts its last stage, see ``plan.first_launch``), and the
trainer's per-step consumption stats, which assert ``"s3" in folder`` for every dataset folder
(``src/nanotron/data/nemo_dataset/blendable_dataset.py``, ``get_consumption_stats``, called by
``DistributedTrainer.train`` after every step).
"""

from __future__ import annotations

from ai_filters.nanotron.data import (
    READER,
    dataset_folders,
    dataset_weights,
    folder_problems,
    read_tokenized_folder,
    token_size_for,
)
from ai_filters.nanotron.loading import NanotronConfigError, config_to_dict, load_config
from ai_filters.nanotron.schedule import LR_DECAY_STYLES, LR_WARMUP_STYLES
from ai_filters.nanotron.schema import DatasetStageArgs, NanosetDatasetsArgs, NanotronConfig
from ai_filters.training import wsd_phases

# the data stages of a staged plan (nanotron-config --selection-stage decay)
STABLE_STAGE, DECAY_STAGE = "stable", "decay"


def global_batch_size(config: NanotronConfig) -> int:
    """Sequences per optimizer step: micro batch x gradient accumulation x dp."""
    t = config.tokens
    return t.micro_batch_size * t.batch_accumulation_per_replica * config.parallelism.dp


def largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of ``n`` that is at most ``at_most``."""
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def validate(
    config: NanotronConfig,
    *,
    world_size: int | None = None,
    global_batch: int | None = None,
    check_folders: bool = False,
) -> None:
    """Raise ``NanotronConfigError`` listing every problem that nanotron would fail on or misrun.

    Checks the types (as ``load_config``), the sections a training run needs, parallelism
    (``dp*tp*pp*cp == world_size`` when given), attention heads against tp, the batch
    (``micro_batch * accumulation * dp == global_batch`` when given), the WSD schedule, and the
    data stages (weights, vocab, tokenizer). With ``check_folders`` the dataset folders must exist
    and hold ``.ds`` files that match the declared tokenizer, token size and vocab.
    """
    problems: list[str] = []
    try:
        load_config(config_to_dict(config))
    except NanotronConfigError as error:
        problems.extend(error.problems)
    problems.extend(_missing_sections(config))
    if not problems:
        problems.extend(_check_parallelism(config, world_size))
        problems.extend(_check_model(config))
        problems.extend(_check_tokens(config, global_batch))
        problems.extend(_check_schedule(config))
        problems.extend(_check_data(config))
        if check_folders:
            problems.extend(_check_folders(config))
    if problems:
        raise NanotronConfigError(problems)


def _missing_sections(config: NanotronConfig) -> list[str]:
    needed = ("tokenizer", "checkpoints", "logging", "tokens", "optimizer", "data_stages")
    return [
        f"add the {name} section: nanotron's trainer needs it"
        for name in needed
        if getattr(config, name) is None
    ]


def _check_parallelism(config: NanotronConfig, world_size: int | None) -> list[str]:
    par = config.parallelism
    sizes = {
        "dp": par.dp,
        "tp": par.tp,
        "pp": par.pp,
        "context_parallel_size": par.context_parallel_size,
    }
    problems = [f"parallelism.{k} is {v}: set it to 1 or more" for k, v in sizes.items() if v < 1]
    if problems or world_size is None:
        return problems
    used = par.dp * par.tp * par.pp * par.context_parallel_size
    if used != world_size:
        rest = par.tp * par.pp * par.context_parallel_size
        fix = (
            f"set parallelism.dp to {world_size // rest}"
            if world_size % rest == 0
            else (f"choose tp*pp*cp (now {rest}) dividing {world_size}")
        )
        problems.append(f"dp*tp*pp*cp = {used} but the launch has {world_size} GPUs: {fix}")
    return problems


def _check_model(config: NanotronConfig) -> list[str]:
    model, tp = config.model.model_config, config.parallelism.tp
    heads = model.num_attention_heads
    kv = model.num_key_value_heads if model.num_key_value_heads is not None else heads
    where = "model.model_config"
    problems = []
    if heads % tp:
        problems.append(
            f"{where}.num_attention_heads ({heads}) is not divisible by parallelism.tp ({tp}): "
            f"use a tp dividing {heads} (e.g. {largest_divisor(heads, tp)})"
        )
    if kv % tp:
        problems.append(
            f"{where}.num_key_value_heads ({kv}) is not divisible by parallelism.tp ({tp}): "
            f"tensor parallelism splits the KV heads too; use tp <= {largest_divisor(kv, tp)}"
        )
    if kv > heads or heads % kv:
        problems.append(
            f"{where}.num_key_value_heads ({kv}) must divide num_attention_heads ({heads})"
        )
    if model.hidden_size % heads:
        problems.append(
            f"{where}.hidden_size ({model.hidden_size}) must be a multiple of "
            f"num_attention_heads ({heads})"
        )
    seq = config.tokens.sequence_length
    if model.max_position_embeddings < seq:
        problems.append(
            f"{where}.max_position_embeddings ({model.max_position_embeddings}) is below "
            f"tokens.sequence_length ({seq}): set it to at least {seq}"
        )
    return problems


def _check_tokens(config: NanotronConfig, global_batch: int | None) -> list[str]:
    tokens = config.tokens
    sizes = ("sequence_length", "train_steps", "micro_batch_size", "batch_accumulation_per_replica")
    problems = [
        f"tokens.{n} is {getattr(tokens, n)}: set it to 1 or more"
        for n in sizes
        if getattr(tokens, n) < 1
    ]
    if config.checkpoints.checkpoint_interval < 1:
        problems.append("checkpoints.checkpoint_interval must be 1 or more")
    if config.checkpoints.resume_checkpoint_path is None:
        problems.append(
            "set checkpoints.resume_checkpoint_path (e.g. to checkpoints_path "
            f"{config.checkpoints.checkpoints_path!r}): without it a job that is requeued or "
            "resubmitted starts again at step 0 (nanotron resumes from <path>/latest.txt and "
            "starts fresh while that file does not exist)"
        )
    if global_batch is not None and global_batch_size(config) != global_batch:
        problems.append(
            f"micro_batch_size * batch_accumulation_per_replica * dp = {global_batch_size(config)}"
            f", not the {global_batch} sequences asked: change the accumulation or micro batch"
        )
    if config.profiler is not None and config.profiler.profiler_export_path is not None:
        prof = config.profiler
        needed = prof.skip_first + prof.repeat * (prof.wait + prof.warmup + prof.active)
        if tokens.train_steps < needed:
            problems.append(
                f"the profiler needs {needed} steps: raise tokens.train_steps or drop the profiler"
            )
    return problems


def _check_schedule(config: NanotronConfig) -> list[str]:
    s = config.optimizer.learning_rate_scheduler
    at = "optimizer.learning_rate_scheduler"
    steps = config.tokens.train_steps
    problems = []
    if s.lr_warmup_style not in LR_WARMUP_STYLES:
        problems.append(
            f"set {at}.lr_warmup_style to one of {', '.join(LR_WARMUP_STYLES)} "
            f"(now {s.lr_warmup_style!r}; nanotron refuses anything else)"
        )
    if s.lr_decay_style not in LR_DECAY_STYLES:
        problems.append(
            f"set {at}.lr_decay_style to one of {', '.join(LR_DECAY_STYLES)} "
            f"(now {s.lr_decay_style!r})"
        )
    if s.min_decay_lr is None:
        problems.append(
            f"set {at}.min_decay_lr (e.g. {s.learning_rate / 10:.1e}); without it nanotron decays "
            "to the peak LR, i.e. no decay"
        )
    elif not 0 <= s.min_decay_lr < s.learning_rate:
        problems.append(
            f"set {at}.min_decay_lr to >= 0 and below learning_rate ({s.learning_rate}); "
            f"{s.min_decay_lr} is no decay"
        )
    if s.lr_decay_steps is None or s.lr_decay_starting_step is None:
        phases = wsd_phases(steps)
        problems.append(
            f"set {at}.lr_decay_starting_step and lr_decay_steps (WSD: decay the last 25%, "
            f"e.g. {phases.decay_start} and {phases.decay_steps})"
        )
        return problems
    if s.lr_decay_starting_step <= s.lr_warmup_steps:
        problems.append(
            f"{at}.lr_decay_starting_step ({s.lr_decay_starting_step}) must come after "
            f"lr_warmup_steps ({s.lr_warmup_steps}): raise it"
        )
    end = s.lr_decay_starting_step + s.lr_decay_steps
    if _is_first_launch(config):
        return problems
    if end != steps or s.lr_decay_steps < 1:
        problems.append(
            f"{at}.lr_decay_starting_step + lr_decay_steps = {end}, but tokens.train_steps = "
            f"{steps}: set lr_decay_steps to {steps - s.lr_decay_starting_step} so the decay "
            "ends at the last step"
        )
    return problems


def _is_first_launch(config: NanotronConfig) -> bool:
    """The first launch of a staged plan: the stable stage alone, stopping at the step before
    the decay (its schedule is the whole run's; the staged config resumes from its end)."""
    stages, s = config.data_stages, config.optimizer.learning_rate_scheduler
    return (
        len(stages) == 1
        and stages[0].name == STABLE_STAGE
        and config.tokens.train_steps == s.lr_decay_starting_step - 1
    )


def _check_data(config: NanotronConfig) -> list[str]:
    stages = config.data_stages
    if not stages:
        return ["add a data stage starting at step 1: without one nanotron trains on random tokens"]
    problems = []
    if not any(stage.start_training_step == 1 for stage in stages):
        problems.append(
            "set one data stage's start_training_step to 1: nanotron requires a stage starting at 1"
        )
    for label, values in (
        ("name", [s.name for s in stages]),
        ("start_training_step", [s.start_training_step for s in stages]),
    ):
        if len(set(values)) != len(values):
            problems.append(f"data stages need distinct {label}s, got {values}")
    for i, stage in enumerate(stages):
        problems.extend(_check_stage(config, stage, f"data_stages[{i}]"))
    return problems


def _check_stage(config: NanotronConfig, stage: DatasetStageArgs, where: str) -> list[str]:
    dataset, at = stage.data.dataset, f"{where}.data.dataset"
    if dataset is None:
        return [f"set {at} to a Nanoset (dataset_folder: [...]); null means random tokens"]
    problems = []
    folders, weights = dataset_folders(dataset), dataset_weights(dataset)
    if not 1 <= stage.start_training_step <= config.tokens.train_steps:
        problems.append(f"{where}.start_training_step must be between 1 and tokens.train_steps")
    if not folders:
        problems.append(f"{at}.dataset_folder is empty: list the tokenized folders")
    if weights is None and len(folders) > 1:
        problems.append(
            f"set {at}.dataset_weights: without them nanotron blends the {len(folders)} folders "
            "equally, whatever their sizes (use token counts, as `ai-filters nanotron-config` does)"
        )
    elif weights is not None and len(weights) != len(folders):
        problems.append(
            f"{at}.dataset_weights has {len(weights)} entries for {len(folders)} folders: "
            "give one weight per folder"
        )
    if weights is not None and any(w <= 0 for w in weights):
        problems.append(
            f"{at}.dataset_weights must all be positive (got {weights}): "
            "drop a folder instead of weighting it 0"
        )
    if isinstance(dataset.dataset_max_tokens, list) and len(dataset.dataset_max_tokens) != len(
        folders
    ):
        problems.append(f"{at}.dataset_max_tokens needs one entry per folder ({len(folders)})")
    problems.extend(_check_reader(dataset, folders, at))
    problems.extend(_check_vocab(config, dataset, at))
    return problems


def _check_reader(dataset: NanosetDatasetsArgs, folders: list[str], at: str) -> list[str]:
    """The reader path and the folder paths nanotron main can run with."""
    problems = []
    if dataset.use_old_brrr_dataloader is not True:
        problems.append(
            f"set {at}.use_old_brrr_dataloader: true ({READER}): the other reader, "
            "TokenizedBytesFolderDataset, calls DatatroveFolderDataset with arguments no released "
            "datatrove takes, so training stops with a TypeError at the first batch"
        )
    if dataset.dataset_read_path is not None:
        problems.append(
            f"remove {at}.dataset_read_path: {READER} ignores it and reads dataset_folder"
        )
    for folder in folders:
        if "s3" not in folder:
            problems.append(
                f"{at}.dataset_folder {folder!r}: nanotron main asserts 's3' in every dataset "
                "folder path after each training step (BlendableDataset.get_consumption_stats): "
                "read the folder from s3://, or through a path containing 's3' (e.g. a symbolic "
                "link named tokenized.s3)"
            )
    return problems


def _check_vocab(config: NanotronConfig, dataset: NanosetDatasetsArgs, at: str) -> list[str]:
    vocab = config.model.model_config.vocab_size
    tokenizer = config.tokenizer.tokenizer_name_or_path
    problems = []
    if dataset.vocab_size != vocab:
        problems.append(
            f"model.model_config.vocab_size ({vocab}) does not match {at}.vocab_size "
            f"({dataset.vocab_size}), the dataset's tokenizer: set both to the tokenizer's "
            "vocab size"
        )
    if dataset.tokenizer_name is None or dataset.tokenizer_name != tokenizer:
        problems.append(
            f"set {at}.tokenizer_name and tokenizer.tokenizer_name_or_path to the tokenizer the "
            f"folders were tokenized with (now {dataset.tokenizer_name!r} and {tokenizer!r})"
        )
    elif tokenizer.endswith(".json"):
        problems.append(
            f"tokenizer {tokenizer!r} is a file: nanotron loads it with AutoTokenizer, which needs "
            "a Hub id or a folder; tokenize with a Hub id (e.g. HuggingFaceTB/cosmo2-tokenizer)"
        )
    if dataset.token_size_in_bytes != token_size_for(vocab):
        problems.append(f"set {at}.token_size_in_bytes to {token_size_for(vocab)} (vocab {vocab})")
    return problems


def _check_folders(config: NanotronConfig) -> list[str]:
    problems = []
    vocab = config.model.model_config.vocab_size
    for i, stage in enumerate(config.data_stages):
        dataset = stage.data.dataset
        for folder in dataset_folders(dataset) if dataset is not None else []:
            try:
                info = read_tokenized_folder(folder, dataset.token_size_in_bytes)
            except (OSError, ValueError) as error:
                problems.append(f"data_stages[{i}]: {error}")
                continue
            problems.extend(folder_problems(info, dataset, vocab, f"data_stages[{i}]"))
    return problems
