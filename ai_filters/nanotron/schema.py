"""nanotron main's config schema as strict dataclasses, field for field.

nanotron is not a dependency (PyPI's 0.4 does not import; GitHub main needs CUDA, flash-attn and
NCCL), so its config classes (huggingface/nanotron@2411b022, ``src/nanotron/config/``) are
mirrored here field for field, with ``Path`` and enum values as strings; the drift test
(``tests/nanotron/test_schema.py``) holds them to the field names recorded from that commit.
Reading a file into them is :mod:`ai_filters.nanotron.loading`; the semantic rules are in
:mod:`ai_filters.nanotron.checks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NANOTRON_COMMIT = "2411b022a75fb7f7561a1bb4166706da5e1b76de"

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
