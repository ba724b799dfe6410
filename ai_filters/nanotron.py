"""nanotron launch configs for the paper's 7B runs: the baseline and corpus + selection.

nanotron is not a dependency (PyPI's 0.4 does not import; GitHub main needs CUDA, flash-attn and
NCCL). This module mirrors the config schema of nanotron main (huggingface/nanotron@2411b022,
``src/nanotron/config/``) as strict dataclasses, checks the rules nanotron asserts at start-up plus
the ones it gets silently wrong (no ``min_decay_lr`` means no decay), reproduces its learning-rate
schedule, and writes the YAML, a Slurm launch script and a plot of the schedule.

    ai-filters nanotron-config --corpus-tokenized tok/corpus --selected-tokenized tok/selected \\
        --out runs/ai_7b.yaml --nodes 64 --gpus-per-node 8 --tp 2

The selected documents are trained on *in addition to* the full corpus (the paper's setup): both
folders are blended with weights proportional to their token counts, read from the ``.ds`` files.
"""

from __future__ import annotations

import difflib
import math
import textwrap
import types
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np
import yaml

NANOTRON_COMMIT = "2411b022a75fb7f7561a1bb4166706da5e1b76de"
DEFAULT_TOKENIZER = "HuggingFaceTB/cosmo2-tokenizer"
PAPER_TOKENS = {"corpus": 238_300_000_000, "selected": 73_100_000_000}
WARMUP_FRACTION = 0.001
DECAY_FRACTION = 0.25
LR_WARMUP_STYLES = ("linear", "constant")
LR_DECAY_STYLES = ("linear", "cosine", "1-sqrt")
SHIPPED_NODES, SHIPPED_GPUS_PER_NODE, SHIPPED_TP = 64, 8, 2
PAPER_COUNTS_NOTE = (
    "Token counts are the paper's (cosmo2 tokenizer): corpus 238.3B = FineWeb-Edu-dedup 193.3B + "
    "Cosmopedia-v2 27.9B + Python-Edu 3.8B + OpenWebMath 13.3B; selection (top 20% of documents "
    "per domain) 73.1B."
)
TP2_NOTE = (
    "tp 2: with tp 1 a GPU would hold bf16 weights, fp32 master weights and fp32 gradients "
    "(~70 GB for 7B) before activations of an 8,192-token sequence; tp 2 halves both."
)

LogLevel = Literal["debug", "info", "warning", "error", "critical", "passive"]
DType = Literal[
    "float32",
    "float64",
    "complex64",
    "complex128",
    "float16",
    "bfloat16",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "bool",
]
AttentionImplementation = Literal[
    "flash_attention_2",
    "flex_attention",
    "sdpa",
    "ring_flash_triton",
    "ring",
    "llama3_ring_attention",
]


# --- the schema: nanotron main's dataclasses, field for field (Path and enum values as strings) ---


@dataclass
class GeneralArgs:
    project: str
    run: str | None = None
    seed: int | None = None
    step: int | None = None
    consumed_train_samples: int | None = None
    benchmark_csv_path: str | None = None
    ignore_sanity_checks: bool = True


@dataclass
class CheckpointsArgs:
    checkpoints_path: str
    checkpoint_interval: int
    save_initial_state: bool | None = False
    save_final_state: bool | None = True
    resume_checkpoint_path: str | None = None
    load_lr_scheduler: bool | None = True
    load_optimizer: bool | None = True
    checkpoints_path_is_shared_file_system: bool | None = False


@dataclass
class ParallelismArgs:
    dp: int
    pp: int
    tp: int
    pp_engine: Literal["1f1b", "afab"] | None = None
    tp_mode: Literal["ALL_REDUCE", "REDUCE_SCATTER"] | None = None
    tp_linear_async_communication: bool | None = None
    recompute_layer: bool = False
    tp_recompute_allgather: bool = True
    expert_parallel_size: int = 1
    context_parallel_size: int = 1


@dataclass
class RandomInit:
    std: float
    scaling_method: Literal["NONE", "NUM_LAYERS", "LAYER_INDEX", "MODEL_SCALE"] = "NUM_LAYERS"


@dataclass
class SpectralMupInit:
    use_mup: bool


@dataclass
class ExistingCheckpointInit:
    path: str


@dataclass
class LlamaConfig:
    bos_token_id: int = 1
    eos_token_id: int = 2
    hidden_act: str = "silu"
    hidden_size: int = 4096
    initializer_range: float = 0.02
    intermediate_size: int = 11008
    is_llama_config: bool = True
    max_position_embeddings: int = 2048
    num_attention_heads: int = 32
    num_hidden_layers: int = 32
    attention_bias: bool = False
    num_key_value_heads: int | None = None
    pad_token_id: int | None = None
    pretraining_tp: int = 1
    rms_norm_eps: float = 1e-6
    rope_scaling: dict | None = None
    rope_theta: float = 10000.0
    rope_interleaved: bool = False
    tie_word_embeddings: bool = False
    use_cache: bool = True
    vocab_size: int = 32000
    _attn_implementation: AttentionImplementation | None = "flash_attention_2"
    z_loss_enabled: bool = False
    z_loss_coefficient: float = 0.0001


@dataclass
class ModelArgs:
    model_config: LlamaConfig
    init_method: RandomInit | SpectralMupInit | ExistingCheckpointInit
    dtype: DType | None = None
    make_vocab_size_divisible_by: int = 1
    ddp_bucket_cap_mb: int = 25


@dataclass
class TokenizerArgs:
    tokenizer_name_or_path: str | None = None
    tokenizer_revision: str | None = None
    tokenizer_max_length: int | None = None


@dataclass
class TokensArgs:
    sequence_length: int
    train_steps: int
    micro_batch_size: int
    batch_accumulation_per_replica: int
    val_check_interval: int | None = -1
    limit_val_batches: int | None = 0
    limit_test_batches: int | None = 0


@dataclass
class LRSchedulerArgs:
    learning_rate: float
    lr_warmup_steps: int = 0
    lr_warmup_style: str | None = None
    lr_decay_style: str | None = None
    lr_decay_steps: int | None = None
    lr_decay_starting_step: int | None = None
    min_decay_lr: float | None = None


@dataclass
class SGDOptimizerArgs:
    name: str = "sgd"


@dataclass
class AdamWOptimizerArgs:
    adam_eps: float
    adam_beta1: float
    adam_beta2: float
    torch_adam_is_fused: bool
    name: str = "adamW"


@dataclass
class OptimizerArgs:
    optimizer_factory: SGDOptimizerArgs | AdamWOptimizerArgs
    zero_stage: int
    weight_decay: float
    clip_grad: float | None
    accumulate_grad_in_fp32: bool
    learning_rate_scheduler: LRSchedulerArgs
    weight_decay_exclude_named_params: list[str] | None = None


@dataclass
class NanosetDatasetsArgs:
    dataset_folder: str | list[str]
    dataset_weights: list[float] | None = None
    dataset_read_path: str | list[str] | None = None
    tokenizer_name: str | None = None
    vocab_size: int | None = None
    token_size_in_bytes: int | None = None
    return_positions: bool | None = True
    skip_in_stream: bool | None = False
    pad_samples_to_global_batch_size: bool | None = False
    dataset_max_tokens: list[int] | None = None
    shuffle_files: bool | None = False
    use_old_brrr_dataloader: bool | None = False


@dataclass
class DataArgs:
    dataset: NanosetDatasetsArgs | None
    seed: int | None
    num_loading_workers: int | None = 1


@dataclass
class DatasetStageArgs:
    name: str
    start_training_step: int
    data: DataArgs
    sequence_length: int | None = None


@dataclass
class LoggingArgs:
    log_level: LogLevel | None = None
    log_level_replica: LogLevel | None = None
    iteration_step_info_interval: int | None = 1


@dataclass
class MetricsLoggingArgs:
    log_level: Literal[0, 1] = 0
    log_detail_interval: int = 10


@dataclass
class ProfilerArgs:
    profiler_export_path: str | None
    wait: int = 1
    warmup: int = 1
    active: int = 1
    repeat: int = 1
    skip_first: int = 3
    record_shapes: bool = False
    profile_memory: bool = False
    with_stack: bool = True
    export_chrome_trace: bool = False


@dataclass
class S3UploadArgs:
    upload_s3_path: str
    remove_after_upload: bool
    s5cmd_numworkers: int | None
    s5cmd_concurrency: int | None
    s5cmd_path: str | None


@dataclass
class GenerationArgs:
    sampler: str | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    n_samples: int | None = None
    eos: str | None = None
    seed: int | None = None
    use_cache: bool | None = False


@dataclass
class LightEvalLoggingArgs:
    local_output_path: str | None = None
    push_results_to_hub: bool | None = None
    push_details_to_hub: bool | None = None
    push_results_to_tensorboard: bool | None = None
    hub_repo_results: str | None = None
    hub_repo_details: str | None = None
    hub_repo_tensorboard: str | None = None
    tensorboard_metric_prefix: str | None = None


@dataclass
class LightEvalTasksArgs:
    tasks: str | None = None
    custom_tasks: str | None = None
    max_samples: int | None = None
    num_fewshot_seeds: int | None = None
    dataset_loading_processes: int | None = 8
    multichoice_continuations_start_space: bool | None = None
    no_multichoice_continuations_start_space: bool | None = None


@dataclass
class LightEvalWandbLoggerConfig:
    wandb_project: str = ""
    wandb_entity: str | None = None
    wandb_run_name: str | None = None


@dataclass
class LightEvalSlurm:
    gpus_per_node: int = 8
    partition: str = "hopper-prod"
    hf_cache: str = "~/.cache/huggingface"
    cpus_per_task: int = 88
    qos: str = "low"
    time: str = "24:00:00"
    reservation: str | None = "smollm"


@dataclass
class LightEvalConfig:
    slurm_script_dir: str | None = "eval_results/launch-config"
    logs_path: str | None = "eval_results/logs"
    local_checkpoint_dir: str = "/scratch"
    parallelism: ParallelismArgs | None = None
    batch_size: int | None = None
    generation: GenerationArgs | dict[str, GenerationArgs] | None = None
    tasks: LightEvalTasksArgs | None = None
    logging: LightEvalLoggingArgs | None = None
    wandb: LightEvalWandbLoggerConfig | None = None
    slurm: LightEvalSlurm | None = None
    s3_save_path: str | None = None
    upload_to_wandb: bool | None = False
    wandb_project: str | None = None
    wandb_entity: str | None = None
    output_dir: str | None = None
    nanotron_path: str | None = "./"
    eval_config_override: str | None = None
    eval_interval: int | None = None
    eval_interval_file: str | None = None


@dataclass
class NanotronConfig:
    """nanotron's ``Config``: the whole YAML file."""

    general: GeneralArgs
    parallelism: ParallelismArgs
    model: ModelArgs
    tokenizer: TokenizerArgs | None = None
    checkpoints: CheckpointsArgs | None = None
    logging: LoggingArgs | None = None
    metrics_logging: MetricsLoggingArgs | None = None
    tokens: TokensArgs | None = None
    optimizer: OptimizerArgs | None = None
    data_stages: list[DatasetStageArgs] | None = None
    profiler: ProfilerArgs | None = None
    lighteval: LightEvalConfig | None = None
    s3_upload: S3UploadArgs | None = None


class NanotronConfigError(ValueError):
    """A nanotron config that nanotron would reject or run wrongly; ``problems`` lists each fix."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        count = f"{len(self.problems)} problem{'s' if len(self.problems) > 1 else ''}"
        super().__init__(
            f"{count} in the nanotron config:\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


# --- strict loading ---


def load_config(source: str | Path | Mapping[str, Any]) -> NanotronConfig:
    """Load a nanotron YAML file (or its parsed dict) into ``NanotronConfig``, strictly.

    Like nanotron's ``dacite`` loading with ``strict=True``: unknown keys, missing required keys
    and values of the wrong type are errors. All of them are reported at once, each named by its
    key path, in a ``NanotronConfigError``. No semantic checks: see ``validate``.
    """
    if isinstance(source, Mapping):
        data = source
    else:
        with open(source, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    problems: list[str] = []
    config = _convert(data, NanotronConfig, "", problems)
    if problems:
        raise NanotronConfigError(problems)
    return config


def config_to_dict(config: NanotronConfig) -> dict[str, Any]:
    """The plain dict that ``write_config`` dumps (and ``load_config`` reads back)."""
    return asdict(config)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _convert(value: Any, kind: Any, path: str, problems: list[str]) -> Any:
    """Check ``value`` against the annotation ``kind``; append a message per problem found."""
    origin = get_origin(kind)
    if kind is Any:
        return value
    if origin in (Union, types.UnionType):
        return _convert_union(value, get_args(kind), path, problems)
    if origin is Literal:
        if value not in get_args(kind):
            choices = ", ".join(repr(choice) for choice in get_args(kind))
            problems.append(f"{path}: {value!r} is not allowed; use one of {choices}")
        return value
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {value!r}")
            return value
        (item,) = get_args(kind)
        return [_convert(v, item, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if kind is dict or origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {value!r}")
            return value
        if not get_args(kind):
            return value
        item = get_args(kind)[1]
        return {k: _convert(v, item, _join(path, k), problems) for k, v in value.items()}
    if is_dataclass(kind):
        return _convert_dataclass(value, kind, path, problems)
    return _convert_scalar(value, kind, path, problems)


def _convert_union(value: Any, options: tuple, path: str, problems: list[str]) -> Any:
    if value is None and type(None) in options:
        return None
    candidates = [option for option in options if option is not type(None)]
    attempts = []
    for candidate in candidates:
        found: list[str] = []
        converted = _convert(value, candidate, path, found)
        if not found:
            return converted
        attempts.append((len(found), found, converted))
    _, found, converted = min(attempts, key=lambda attempt: attempt[0])
    problems.extend(found)
    return converted


def _convert_scalar(value: Any, kind: type, path: str, problems: list[str]) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    hint = ""
    if kind is float and isinstance(value, str) and _is_number(value):
        hint = " (YAML reads 4e-4 as text: write 4.0e-4)"
    problems.append(f"{path}: expected {kind.__name__}, got {value!r}{hint}")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _accepts_none(kind: Any) -> bool:
    return get_origin(kind) in (Union, types.UnionType) and type(None) in get_args(kind)


def _convert_dataclass(value: Any, cls: type, path: str, problems: list[str]) -> Any:
    where = path or "the config"
    if not isinstance(value, dict):
        problems.append(f"{where}: expected a mapping of {cls.__name__} fields, got {value!r}")
        return None
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in value:
        if key not in hints:
            problems.append(_unknown_key(_join(path, key), str(key), names))
    kwargs: dict[str, Any] = {}
    missing = False
    for spec in fields(cls):
        if spec.name in value:
            kwargs[spec.name] = _convert(
                value[spec.name], hints[spec.name], _join(path, spec.name), problems
            )
        elif spec.default is MISSING and spec.default_factory is MISSING:
            if _accepts_none(hints[spec.name]):
                kwargs[spec.name] = None
            else:
                problems.append(f"{_join(path, spec.name)} is required: add it to {where}")
                missing = True
    return None if missing else cls(**kwargs)


def _unknown_key(path: str, key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"{path} is not a field; did you mean {close[0]}?"
    return f"{path} is not a field; remove it (valid: {', '.join(names)})"


# --- validation ---


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
            f"use a tp dividing {heads} (e.g. {_largest_divisor(heads, tp)})"
        )
    if kv % tp:
        problems.append(
            f"{where}.num_key_value_heads ({kv}) is not divisible by parallelism.tp ({tp}): "
            f"tensor parallelism splits the KV heads too; use tp <= {_largest_divisor(kv, tp)}"
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


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


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
        problems.append(
            f"set {at}.lr_decay_starting_step and lr_decay_steps (WSD: decay the last 25%, "
            f"e.g. {steps - round(steps * DECAY_FRACTION)} and {round(steps * DECAY_FRACTION)})"
        )
        return problems
    if s.lr_decay_starting_step <= s.lr_warmup_steps:
        problems.append(
            f"{at}.lr_decay_starting_step ({s.lr_decay_starting_step}) must come after "
            f"lr_warmup_steps ({s.lr_warmup_steps}): raise it"
        )
    end = s.lr_decay_starting_step + s.lr_decay_steps
    if end != steps or s.lr_decay_steps < 1:
        problems.append(
            f"{at}.lr_decay_starting_step + lr_decay_steps = {end}, but tokens.train_steps = "
            f"{steps}: set lr_decay_steps to {steps - s.lr_decay_starting_step} so the decay "
            "ends at the last step"
        )
    return problems


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


def _folders(dataset: NanosetDatasetsArgs) -> list[str]:
    """Dataset folders as nanotron sees them (a single string is one folder)."""
    folder = dataset.dataset_folder
    return [folder] if isinstance(folder, str) else list(folder)


def _weights(dataset: NanosetDatasetsArgs) -> list[float] | None:
    """Dataset weights as nanotron sees them (a single folder string gets weight 1)."""
    return [1.0] if isinstance(dataset.dataset_folder, str) else dataset.dataset_weights


def _check_stage(config: NanotronConfig, stage: DatasetStageArgs, where: str) -> list[str]:
    dataset, at = stage.data.dataset, f"{where}.data.dataset"
    if dataset is None:
        return [f"set {at} to a Nanoset (dataset_folder: [...]); null means random tokens"]
    problems = []
    folders, weights = _folders(dataset), _weights(dataset)
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
    for name in ("dataset_read_path", "dataset_max_tokens"):
        value = getattr(dataset, name)
        if isinstance(value, list) and len(value) != len(folders):
            problems.append(f"{at}.{name} needs one entry per folder ({len(folders)})")
    problems.extend(_check_vocab(config, dataset, at))
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


def token_size_for(vocab_size: int) -> int:
    """Bytes per token in datatrove's ``.ds`` files: uint16 up to 65,536 ids, else uint32."""
    return 2 if vocab_size <= 65536 else 4


def _check_folders(config: NanotronConfig) -> list[str]:
    problems = []
    vocab = config.model.model_config.vocab_size
    for i, stage in enumerate(config.data_stages):
        dataset = stage.data.dataset
        for folder in _folders(dataset) if dataset is not None else []:
            try:
                info = read_tokenized_folder(folder)
            except (OSError, ValueError) as error:
                problems.append(f"data_stages[{i}]: {error}")
                continue
            problems.extend(_compare_folder(info, dataset, vocab, f"data_stages[{i}]"))
    return problems


def _compare_folder(
    info: TokenizedFolder, dataset: NanosetDatasetsArgs, vocab: int, where: str
) -> list[str]:
    problems = []
    if info.tokenizer_name is not None and info.tokenizer_name != dataset.tokenizer_name:
        problems.append(
            f"{info.folder} was tokenized with {info.tokenizer_name!r}: set "
            f"{where}.data.dataset.tokenizer_name and tokenizer.tokenizer_name_or_path to it"
        )
    if info.token_size != dataset.token_size_in_bytes:
        problems.append(
            f"{info.folder} stores {info.token_size}-byte tokens: set "
            f"{where}.data.dataset.token_size_in_bytes to {info.token_size}"
        )
    if info.max_token_id >= vocab:
        problems.append(
            f"{info.folder} holds token id {info.max_token_id}, outside the model's vocab "
            f"({vocab}): set the vocab_size fields to the tokenizer's vocab size"
        )
    return problems


# --- tokenized folders (datatrove DocumentTokenizer / DocumentTokenizerMerger output) ---


@dataclass(frozen=True)
class TokenizedFolder:
    """What nanotron will read from one folder: its ``*.ds`` files, not recursive."""

    folder: str
    tokens: int
    token_size: int
    tokenizer_name: str | None
    max_token_id: int


def read_tokenized_folder(folder: str | Path, sample_tokens: int = 1 << 20) -> TokenizedFolder:
    """Count the tokens of a datatrove tokenized folder from its ``*.ds`` files.

    Tokens = file size / token size. The token size and tokenizer come from the first line
    ``<tokenizer>|<bytes per token>`` of the ``.ds.metadata`` files (datatrove 0.10's format;
    line 2 is the token count). The merger's extra total ``<name>.ds.metadata`` has no ``.ds``
    file, so nothing is counted twice. ``max_token_id`` is taken over the first ``sample_tokens``
    tokens of each file.
    """
    path = Path(folder)
    files = sorted(path.glob("*.ds"))
    if not files:
        raise FileNotFoundError(
            f"no .ds files in {path}: tokenize it first (pipelines/tokenize_for_nanotron.py)"
        )
    tokenizer_name, token_size = _read_metadata(path)
    dtype = "<u2" if token_size == 2 else "<u4"  # datatrove packs little-endian "H" / "I"
    tokens, max_id = 0, 0
    for file in files:
        size = file.stat().st_size
        if size % token_size:
            raise ValueError(f"{file} is {size} bytes, not a multiple of {token_size}-byte tokens")
        tokens += size // token_size
        sample = np.fromfile(file, dtype=dtype, count=sample_tokens)
        max_id = max(max_id, int(sample.max()) if sample.size else 0)
    return TokenizedFolder(str(folder), tokens, token_size, tokenizer_name, max_id)


def _read_metadata(folder: Path) -> tuple[str | None, int]:
    """(tokenizer name or None, bytes per token) from the first ``*.ds.metadata`` file."""
    metadata = sorted(folder.glob("*.ds.metadata"))
    if not metadata:
        return None, 2
    first = (metadata[0].read_text(encoding="utf-8").splitlines() or [""])[0]
    name, _, size = first.rpartition("|")
    if not size.isdigit():
        raise ValueError(f"{metadata[0]}: expected '<tokenizer>|<bytes per token>', got {first!r}")
    return (None if name.startswith("Unknown Tokenizer") else name), int(size)


# --- the learning-rate schedule ---


def lr_at(step: int, config: NanotronConfig) -> float:
    """The learning rate nanotron's scheduler gives at ``step`` (same math as its ``lr_lambda``).

    nanotron logs this value as ``lr`` at iteration ``step``; the update of iteration ``step``
    uses ``lr_at(step - 1)``. Unset fields resolve as nanotron resolves them: ``lr_decay_steps``
    = train_steps - warmup, ``lr_decay_starting_step`` = warmup, ``min_decay_lr`` = peak.
    Phases: warmup (linear from 0, or constant) up to ``lr_warmup_steps`` inclusive, constant
    peak until ``lr_decay_starting_step``, decay over ``lr_decay_steps``, then ``min_decay_lr``.
    """
    s = config.optimizer.learning_rate_scheduler
    peak, warmup = s.learning_rate, s.lr_warmup_steps
    decay_steps = s.lr_decay_steps
    if decay_steps is None:
        decay_steps = config.tokens.train_steps - warmup
    start = warmup if s.lr_decay_starting_step is None else s.lr_decay_starting_step
    floor = peak if s.min_decay_lr is None else s.min_decay_lr
    if warmup == 0 and decay_steps == 0:
        return peak
    if s.lr_warmup_style is not None and step <= warmup:
        return peak * step / max(warmup, 1) if s.lr_warmup_style == "linear" else peak
    if step < start:
        return peak
    if s.lr_decay_style is not None and step < start + decay_steps:
        return floor + (peak - floor) * _decay_factor(
            s.lr_decay_style, (step - start) / decay_steps
        )
    return floor


def _decay_factor(style: str, progress: float) -> float:
    """Share of (peak - floor) left after ``progress`` (0..1) of the decay."""
    if style == "linear":
        return 1 - progress
    if style == "cosine":
        return (1 + math.cos(math.pi * progress)) / 2
    if style == "1-sqrt":
        return 1 - math.sqrt(progress)
    raise ValueError(f"unknown lr_decay_style {style!r}; use one of {', '.join(LR_DECAY_STYLES)}")


def plot_schedule(config: NanotronConfig, png: str | Path, title: str = "") -> Path:
    """Plot the learning rate over all training steps (and a zoom on the warmup) to ``png``."""
    from matplotlib.figure import Figure

    s = config.optimizer.learning_rate_scheduler
    total = config.tokens.train_steps
    marks = [s.lr_warmup_steps, s.lr_decay_starting_step or s.lr_warmup_steps, total]
    steps = np.unique(np.concatenate([np.linspace(0, total, 2001).round(), marks])).astype(int)
    zoom = np.arange(0, min(total, max(3 * s.lr_warmup_steps, 10)) + 1)
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    full, warm = figure.subplots(1, 2, width_ratios=[3, 1])
    full.plot(steps, [lr_at(int(i), config) for i in steps], color="tab:blue")
    for mark, label in zip(marks[:2], ("end of warmup", "decay starts"), strict=True):
        full.axvline(mark, color="grey", linestyle=":", linewidth=1)
        full.annotate(f"{label}\nstep {mark:,}", (mark, s.learning_rate), fontsize=8, va="top")
    full.set(xlabel="step", ylabel="learning rate", title=title or "nanotron learning rate")
    warm.plot(
        zoom,
        [lr_at(int(i), config) for i in zoom],
        color="tab:orange",
        marker="." if zoom.size <= 60 else None,
    )
    warm.set(xlabel="step", title=f"warmup ({s.lr_warmup_steps} steps)")
    figure.savefig(png, dpi=110)
    return Path(png)


# --- models ---


def parameter_count(model: LlamaConfig) -> int:
    """Parameters of nanotron's Llama: embeddings (x2 if untied), per layer q/k/v/o with grouped
    KV heads (no biases: nanotron's Llama has none), gate/up/down MLP and two RMSNorms, plus the
    final norm."""
    hidden, heads = model.hidden_size, model.num_attention_heads
    kv_heads = model.num_key_value_heads or heads
    head_dim = hidden // heads
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    layer = attention + 3 * hidden * model.intermediate_size + 2 * hidden
    embeddings = model.vocab_size * hidden * (1 if model.tie_word_embeddings else 2)
    return embeddings + model.num_hidden_layers * layer + hidden


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


_SMOLLM_VOCAB = dict(vocab_size=49152, bos_token_id=0, eos_token_id=0)  # cosmo2 tokenizer
PRESETS = {
    "7b": ModelPreset(
        model=LlamaConfig(
            hidden_size=4096,
            intermediate_size=13312,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            rms_norm_eps=1e-5,
            **_SMOLLM_VOCAB,
        ),
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
        model=LlamaConfig(
            hidden_size=96,
            intermediate_size=384,
            num_hidden_layers=4,
            num_attention_heads=3,
            num_key_value_heads=1,
            rms_norm_eps=1e-5,
            **_SMOLLM_VOCAB,
        ),
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


# --- building a run ---


def _short(count: int) -> str:
    """12,345,678 -> '12.3M'; 6,979,588,096 -> '6.98B'."""
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= size:
            return f"{count / size:.3g}{unit}"
    return str(count)


@dataclass(frozen=True)
class Plan:
    """A nanotron config plus what the launch needs and where the numbers came from."""

    config: NanotronConfig
    model_name: str
    nodes: int
    gpus_per_node: int
    requested_tokens: int
    dataset_tokens: dict[str, int]
    counts_from_files: bool
    notes: tuple[str, ...] = ()

    def summary(self) -> list[str]:
        """Human-readable lines: model, parameters, steps, tokens, parallelism, schedule, data."""
        c, model = self.config, self.config.model.model_config
        par, tok = c.parallelism, c.tokens
        s = c.optimizer.learning_rate_scheduler
        per_step = global_batch_size(c) * tok.sequence_length
        real = per_step * tok.train_steps
        params = parameter_count(model)
        lines = [
            f"model: {self.model_name} Llama, {model.num_hidden_layers} layers, hidden "
            f"{model.hidden_size}, {model.num_attention_heads} heads / {model.num_key_value_heads} "
            f"KV heads, FFN {model.intermediate_size:,}, vocab {model.vocab_size:,}, "
            f"{'tied' if model.tie_word_embeddings else 'untied'} embeddings: "
            f"{params:,} parameters ({_short(params)})",
            *self.notes,
            f"train steps: {tok.train_steps:,} x {per_step:,} tokens per step "
            f"({global_batch_size(c):,} sequences x {tok.sequence_length:,}) = {real:,} tokens "
            f"(asked: {self.requested_tokens:,})",
            f"parallelism: {self.nodes} nodes x {self.gpus_per_node} GPUs = dp {par.dp} x tp "
            f"{par.tp} x pp {par.pp}; micro batch {tok.micro_batch_size} x gradient accumulation "
            f"{tok.batch_accumulation_per_replica} x dp {par.dp} = {global_batch_size(c):,} "
            "sequences",
            f"schedule (WSD): {s.lr_warmup_style} warmup over {s.lr_warmup_steps:,} steps "
            f"({s.lr_warmup_steps / tok.train_steps:.1%}), constant {s.learning_rate:.1e} until "
            f"step {s.lr_decay_starting_step:,}, {s.lr_decay_style} decay over the last "
            f"{s.lr_decay_steps:,} steps ({s.lr_decay_steps / tok.train_steps:.0%}) to "
            f"{s.min_decay_lr:.1e}",
        ]
        return lines + self._data_lines(real)

    def _data_lines(self, real_tokens: int) -> list[str]:
        dataset = self.config.data_stages[0].data.dataset
        source = "counted from the .ds files" if self.counts_from_files else "given, not counted"
        lines = [
            f"data: weight {w:.6f} for {folder} ({self.dataset_tokens[folder]:,} tokens, {source})"
            for folder, w in zip(_folders(dataset), _weights(dataset), strict=True)
        ]
        passes = real_tokens / sum(self.dataset_tokens.values())
        lines.append(f"training reads {passes:.3g}x the tokens of the folders")
        if len(lines) > 2:
            lines.append(
                "weights are proportional to token counts: a selected document is in both "
                "folders, so it is seen twice as often as the rest, as in the paper"
            )
        if len(lines) > 2 and not self.counts_from_files:
            lines.append(
                "regenerating with real tokenized folders computes the weights from the .ds files"
            )
        return lines


def build_config(
    corpus_tokenized: str,
    selected_tokenized: str | None = None,
    *,
    model: Literal["7b", "tiny"] = "7b",
    tokens: int | None = None,
    global_batch: int | None = None,
    seq_len: int | None = None,
    lr: float | None = None,
    min_lr: float | None = None,
    decay_style: str = "linear",
    nodes: int = 1,
    gpus_per_node: int = 8,
    tp: int = 1,
    pp: int = 1,
    max_micro_batch: int | None = None,
    token_counts: Sequence[int] | None = None,
    tokenizer_name: str | None = None,
    run_name: str | None = None,
) -> Plan:
    """Plan a WSD run on the full corpus, plus the selected subset when given (as in the paper).

    Unset sizes come from ``PRESETS[model]``. train_steps = round(tokens / (global_batch *
    seq_len)); dp = nodes * gpus_per_node / (tp * pp); the micro batch is the largest divisor of
    global_batch / dp within the memory cap (``max_micro_batch``, else the preset's tokens per
    micro batch / seq_len), the rest is gradient accumulation. Warmup is 0.1% of the steps (at
    least 1), decay the last 25%, to ``min_lr`` (default 10% of ``lr``).

    Folder weights are proportional to their token counts, counted from the ``.ds`` files, or
    taken from ``token_counts`` (then the folders need not exist). The tokenizer comes from the
    folders' ``.ds.metadata`` (else ``tokenizer_name``, else cosmo2). Raises ``ValueError`` for
    sizes that do not divide, ``NanotronConfigError`` if the result does not validate.
    """
    preset = PRESETS[model]
    folders = [corpus_tokenized] + ([selected_tokenized] if selected_tokenized else [])
    if len(set(folders)) != len(folders):
        raise ValueError("the selected folder is the corpus folder: pass the tokenized selection")
    counts, tokenizer, from_files = _dataset_tokens(folders, token_counts, tokenizer_name)
    tokens = tokens or preset.tokens
    global_batch = global_batch or preset.global_batch
    seq_len = seq_len or preset.seq_len
    lr = lr or preset.lr
    steps = max(1, round(tokens / (global_batch * seq_len)))
    dp, micro, accum = split_batch(
        global_batch,
        nodes * gpus_per_node,
        tp * pp,
        max_micro_batch or max(1, preset.micro_batch_tokens // seq_len),
    )
    run = run_name or f"{model}-wsd-{'attention-influence' if selected_tokenized else 'baseline'}"
    config = NanotronConfig(
        general=GeneralArgs(project="ai-filters", run=run, seed=42, ignore_sanity_checks=True),
        parallelism=_parallelism(dp, tp, pp),
        model=ModelArgs(
            model_config=replace(preset.model, max_position_embeddings=seq_len),
            init_method=RandomInit(std=0.02),
            dtype="bfloat16",
        ),
        tokenizer=TokenizerArgs(tokenizer_name_or_path=tokenizer),
        checkpoints=CheckpointsArgs(
            checkpoints_path=f"checkpoints/{run}",
            checkpoint_interval=min(preset.checkpoint_interval, steps),
        ),
        logging=LoggingArgs(
            log_level="info", log_level_replica="info", iteration_step_info_interval=1
        ),
        tokens=TokensArgs(
            sequence_length=seq_len,
            train_steps=steps,
            micro_batch_size=micro,
            batch_accumulation_per_replica=accum,
        ),
        optimizer=_optimizer(
            steps, lr, lr / 10 if min_lr is None else min_lr, decay_style, preset.zero_stage
        ),
        data_stages=[_data_stage(folders, counts, tokenizer, preset.model.vocab_size)],
    )
    validate(config, world_size=nodes * gpus_per_node, global_batch=global_batch)
    return Plan(
        config=config,
        model_name=model,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        requested_tokens=tokens,
        dataset_tokens=dict(zip(folders, counts, strict=True)),
        counts_from_files=from_files,
        notes=preset.notes,
    )


def _data_stage(
    folders: list[str], counts: list[int], tokenizer: str, vocab_size: int
) -> DatasetStageArgs:
    """One stage from step 1 over ``folders``, weighted by their token ``counts``."""
    weights = [float(f"{count / sum(counts):.6g}") for count in counts]
    return DatasetStageArgs(
        name="corpus + selection" if len(folders) > 1 else "corpus",
        start_training_step=1,
        data=DataArgs(
            dataset=NanosetDatasetsArgs(
                dataset_folder=folders,
                dataset_weights=weights,
                tokenizer_name=tokenizer,
                vocab_size=vocab_size,
                token_size_in_bytes=token_size_for(vocab_size),
            ),
            seed=42,
            num_loading_workers=1,
        ),
    )


def split_batch(
    global_batch: int, world_size: int, model_parallel: int, cap: int
) -> tuple[int, int, int]:
    """(dp, micro batch, gradient accumulation) for ``global_batch`` sequences on ``world_size``
    GPUs with tp*pp = ``model_parallel``; the micro batch is the largest divisor of the per-replica
    batch that is <= ``cap``."""
    if world_size % model_parallel:
        raise ValueError(
            f"{world_size} GPUs cannot be split into groups of tp*pp = {model_parallel}"
        )
    dp = world_size // model_parallel
    if global_batch % dp:
        raise ValueError(
            f"global batch {global_batch} is not divisible by dp {dp}: use a multiple of {dp}"
        )
    per_replica = global_batch // dp
    micro = _largest_divisor(per_replica, cap)
    return dp, micro, per_replica // micro


def _dataset_tokens(
    folders: list[str], token_counts: Sequence[int] | None, tokenizer_name: str | None
) -> tuple[list[int], str, bool]:
    """(tokens per folder, tokenizer, counted from files?) for ``build_config``."""
    if token_counts is not None:
        if len(token_counts) != len(folders):
            raise ValueError(f"token_counts needs one count per folder ({len(folders)})")
        return [int(c) for c in token_counts], tokenizer_name or DEFAULT_TOKENIZER, False
    infos = [read_tokenized_folder(folder) for folder in folders]
    names = {info.tokenizer_name for info in infos if info.tokenizer_name is not None}
    if len(names) > 1:
        raise ValueError(f"the folders were tokenized with different tokenizers: {sorted(names)}")
    tokenizer = names.pop() if names else tokenizer_name or DEFAULT_TOKENIZER
    return [info.tokens for info in infos], tokenizer, True


def _parallelism(dp: int, tp: int, pp: int) -> ParallelismArgs:
    return ParallelismArgs(
        dp=dp,
        pp=pp,
        tp=tp,
        pp_engine="1f1b",
        tp_mode="REDUCE_SCATTER" if tp > 1 else "ALL_REDUCE",
        tp_linear_async_communication=tp > 1,
    )


def _optimizer(
    steps: int, lr: float, min_lr: float, decay_style: str, zero_stage: int
) -> OptimizerArgs:
    warmup = max(1, round(steps * WARMUP_FRACTION))
    decay = round(steps * DECAY_FRACTION)
    return OptimizerArgs(
        optimizer_factory=AdamWOptimizerArgs(
            adam_eps=1e-8, adam_beta1=0.9, adam_beta2=0.95, torch_adam_is_fused=True
        ),
        zero_stage=zero_stage,
        weight_decay=0.1,
        clip_grad=1.0,
        accumulate_grad_in_fp32=True,
        learning_rate_scheduler=LRSchedulerArgs(
            learning_rate=lr,
            lr_warmup_steps=warmup,
            lr_warmup_style="linear",
            lr_decay_style=decay_style,
            lr_decay_steps=decay,
            lr_decay_starting_step=steps - decay,
            min_decay_lr=min_lr,
        ),
    )


def global_batch_size(config: NanotronConfig) -> int:
    """Sequences per optimizer step: micro batch x gradient accumulation x dp."""
    t = config.tokens
    return t.micro_batch_size * t.batch_accumulation_per_replica * config.parallelism.dp


# --- writers ---


def write_config(config: NanotronConfig, yaml_path: str | Path, header: Sequence[str] = ()) -> Path:
    """Validate ``config`` and write it as nanotron YAML, ``header`` lines as leading comments."""
    validate(config)
    comments = "".join(f"# {line}\n" for line in header)
    body = yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)
    path = Path(yaml_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(comments + body, encoding="utf-8")
    return path


def write_launch_script(config_path: str | Path, script_path: str | Path, plan: Plan) -> Path:
    """Write a Slurm script that runs nanotron's ``run_train.py`` on ``config_path``: one
    ``torchrun`` per node through ``srun``. Submit it from the folder ``config_path`` is relative
    to, with ``NANOTRON_DIR`` pointing at a nanotron checkout (main)."""
    par, gpus = plan.config.parallelism, plan.gpus_per_node
    exclusive = "#SBATCH --exclusive\n" if plan.nodes > 1 else ""
    text = f"""#!/bin/bash
#SBATCH --job-name={plan.config.general.run}
#SBATCH --nodes={plan.nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus}
{exclusive}#SBATCH --output=%x-%j.out
# Generated by ai-filters nanotron-config.
# {plan.nodes} nodes x {gpus} GPUs = dp {par.dp} x tp {par.tp} x pp {par.pp}
# Usage: NANOTRON_DIR=/path/to/nanotron sbatch {script_path}
set -euo pipefail
cd "${{SLURM_SUBMIT_DIR:-.}}"
NANOTRON_DIR="${{NANOTRON_DIR:?set NANOTRON_DIR to a checkout of github.com/huggingface/nanotron}}"
CONFIG="${{CONFIG:-{config_path}}}"
MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
MASTER_PORT="${{MASTER_PORT:-29500}}"
export CUDA_DEVICE_MAX_CONNECTIONS=1

srun --kill-on-bad-exit=1 torchrun \\
    --nproc_per_node={gpus} \\
    --nnodes={plan.nodes} \\
    --rdzv_id="$SLURM_JOB_ID" \\
    --rdzv_backend=c10d \\
    --rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT" \\
    --max_restarts=0 \\
    "$NANOTRON_DIR/run_train.py" --config-file "$CONFIG"
"""
    path = Path(script_path)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def write_plan(plan: Plan, yaml_path: str | Path) -> list[Path]:
    """Write the YAML, its ``.slurm`` launch script and its ``.png`` schedule side by side."""
    yaml_path = Path(yaml_path)
    lines = [
        f"nanotron config for huggingface/nanotron main ({NANOTRON_COMMIT[:8]}), written by "
        "`ai-filters nanotron-config` (ai_filters/nanotron.py): regenerate rather than edit.",
        *plan.summary(),
    ]
    header = [
        part
        for line in lines
        for part in textwrap.wrap(line, 96, subsequent_indent="  ", break_on_hyphens=False)
    ]
    return [
        write_config(plan.config, yaml_path, header),
        write_launch_script(yaml_path, yaml_path.with_suffix(".slurm"), plan),
        plot_schedule(plan.config, yaml_path.with_suffix(".png"), title=plan.config.general.run),
    ]


def write_shipped(out_dir: str | Path) -> list[Path]:
    """Write the shipped configs: 7B baseline, 7B corpus + selection (both 64 nodes x 8 GPUs,
    tp 2, weights from the paper's token counts) and a tiny 1-GPU smoke test."""
    out = Path(out_dir)
    corpus, selected = "/path/to/tokenized/corpus", "/path/to/tokenized/selected"
    big = dict(model="7b", nodes=SHIPPED_NODES, gpus_per_node=SHIPPED_GPUS_PER_NODE, tp=SHIPPED_TP)
    both = (PAPER_TOKENS["corpus"], PAPER_TOKENS["selected"])
    plans = {
        "smollm_7b_wsd_baseline": build_config(
            corpus, None, token_counts=both[:1], run_name="smollm-7b-wsd-baseline", **big
        ),
        "smollm_7b_wsd_attention_influence": build_config(
            corpus, selected, token_counts=both, run_name="smollm-7b-wsd-attention-influence", **big
        ),
        "tiny_smoke": build_config(
            corpus,
            selected,
            model="tiny",
            nodes=1,
            gpus_per_node=1,
            token_counts=both,
            run_name="tiny-smoke",
        ),
    }
    for name, plan in plans.items():
        extra = (PAPER_COUNTS_NOTE,) + ((TP2_NOTE,) if plan.model_name == "7b" else ())
        plans[name] = replace(plan, notes=plan.notes + extra)
    return [path for name, plan in plans.items() for path in write_plan(plan, out / f"{name}.yaml")]
