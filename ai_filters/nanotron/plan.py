"""Planning a nanotron run from its settings: sizes, parallelism, the WSD schedule, the data blend.

``build_config`` turns a ``PlanSettings`` (a model preset, a token budget, a cluster and the
tokenized folders, :mod:`ai_filters.nanotron.settings`) into a validated ``NanotronConfig``; the
returned ``Plan`` also holds what the launch script needs and where each number came from
(``Plan.summary``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ai_filters.fields import DEFAULT_TRAINING_TOKENIZER
from ai_filters.nanotron.checks import (
    DECAY_STAGE,
    STABLE_STAGE,
    global_batch_size,
    largest_divisor,
    validate,
)
from ai_filters.nanotron.data import (
    READER,
    dataset_folders,
    dataset_weights,
    read_tokenized_folder,
    token_size_for,
)
from ai_filters.nanotron.schema import (
    AdamWOptimizerArgs,
    CheckpointsArgs,
    DataArgs,
    DatasetStageArgs,
    GeneralArgs,
    LoggingArgs,
    LRSchedulerArgs,
    ModelArgs,
    NanosetDatasetsArgs,
    NanotronConfig,
    OptimizerArgs,
    ParallelismArgs,
    RandomInit,
    TokenizerArgs,
    TokensArgs,
)
from ai_filters.nanotron.settings import PlanSettings
from ai_filters.training import FINAL_LR_DIVISOR, parameter_count, wsd_phases


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
            f"checkpoints: every {c.checkpoints.checkpoint_interval:,} steps to "
            f"{c.checkpoints.checkpoints_path}; a relaunch resumes from "
            f"{c.checkpoints.resume_checkpoint_path}/latest.txt (a first launch starts fresh)",
            f"data reader: nanotron's {READER} (use_old_brrr_dataloader: true), samples of "
            f"{tok.sequence_length + 1:,} tokens",
        ]
        return lines + self._data_lines(real)

    def _folder_lines(self, stage: DatasetStageArgs, prefix: str) -> list[str]:
        dataset = stage.data.dataset
        source = "counted from the .ds files" if self.counts_from_files else "given, not counted"
        return [
            f"{prefix}weight {w:.6f} for {folder} ({self.dataset_tokens[folder]:,} tokens, "
            f"{source})"
            for folder, w in zip(dataset_folders(dataset), dataset_weights(dataset), strict=True)
        ]

    def _data_lines(self, real_tokens: int) -> list[str]:
        stages = self.config.data_stages
        if len(stages) > 1:
            return self._stage_lines()
        lines = self._folder_lines(stages[0], "data: ")
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

    def _stage_lines(self) -> list[str]:
        """The data lines of a staged plan: each stage's steps and folders, how to launch it."""
        stages, last = self.config.data_stages, self.config.tokens.train_steps
        ends = [s.start_training_step - 1 for s in stages[1:]] + [last]
        lines = []
        for stage, end in zip(stages, ends, strict=True):
            where = f"data stage {stage.name!r}, steps {stage.start_training_step:,} to {end:,}: "
            lines += self._folder_lines(stage, where)
        lines.append(
            "nanotron main trains on the last data stage only and starts a new stage when it "
            "resumes at the step before it: launch the stable stage first (the .stable.yaml "
            f"written next to this config, which stops at step {ends[-2]:,} and saves a "
            "checkpoint), then this config, which resumes from that checkpoint"
        )
        return lines


def build_config(settings: PlanSettings) -> Plan:
    """Plan a WSD run on the full corpus, plus the selected subset when given (as in the paper).

    Unset sizes of ``settings`` come from its preset (``PRESETS``). train_steps = round(tokens /
    (global_batch * seq_len)); dp = nodes * gpus_per_node / (tp * pp); the micro batch is the
    largest divisor of global_batch / dp within the memory cap (``max_micro_batch``, else the
    preset's tokens per micro batch / seq_len), the rest is gradient accumulation. Warmup and
    decay are :func:`ai_filters.training.wsd_phases` (0.1% and the last 25% of the steps, each at
    least one), decaying to ``min_lr`` (default 10% of ``lr``).

    Folder weights are proportional to their token counts, counted from the ``.ds`` files, or
    taken from ``token_counts`` (then the folders need not exist). The tokenizer comes from the
    folders' ``.ds.metadata`` (else ``tokenizer_name``, else cosmo2). The data is read by
    nanotron's ``OldTokenizedBytesFolderDataset`` (:mod:`ai_filters.nanotron.data`). Checkpoints
    go to ``checkpoints_path`` (default ``checkpoints/<run>``), which is also the
    ``resume_checkpoint_path``: a requeued job resumes from the last checkpoint, a first launch
    starts fresh. Raises ``ValueError`` for sizes that do not divide or folders tokenized
    differently, ``NanotronConfigError`` if the result does not validate.
    """
    s, preset = settings, settings.preset
    folders = s.folders
    counts, tokenizer, from_files = _dataset_tokens(folders, s.token_counts, s.tokenizer_name)
    tokens = s.tokens or preset.tokens
    global_batch = s.global_batch or preset.global_batch
    seq_len = s.seq_len or preset.seq_len
    lr = s.lr or preset.lr
    final_lr = lr / FINAL_LR_DIVISOR if s.min_lr is None else s.min_lr
    steps = max(1, round(tokens / (global_batch * seq_len)))
    dp, micro, accum = split_batch(
        global_batch,
        s.nodes * s.gpus_per_node,
        s.tp * s.pp,
        s.max_micro_batch or max(1, preset.micro_batch_tokens // seq_len),
    )
    kind = "attention-influence" if s.selected_tokenized else "baseline"
    run = s.run_name or f"{s.model}-wsd-{kind}"
    checkpoints_path = s.checkpoints_path or f"checkpoints/{run}"
    config = NanotronConfig(
        general=GeneralArgs(project="ai-filters", run=run, seed=42, ignore_sanity_checks=True),
        parallelism=_parallelism(dp, s.tp, s.pp),
        model=ModelArgs(
            model_config=replace(preset.model, max_position_embeddings=seq_len),
            init_method=RandomInit(std=0.02),
            dtype="bfloat16",
        ),
        tokenizer=TokenizerArgs(tokenizer_name_or_path=tokenizer),
        checkpoints=CheckpointsArgs(
            checkpoints_path=checkpoints_path,
            checkpoint_interval=min(preset.checkpoint_interval, steps),
            resume_checkpoint_path=checkpoints_path,
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
        optimizer=_optimizer(steps, lr, final_lr, s.decay_style, preset.zero_stage),
        data_stages=_data_stages(s, counts, tokenizer, wsd_phases(steps).decay_start),
    )
    validate(config, world_size=s.nodes * s.gpus_per_node, global_batch=global_batch)
    return Plan(
        config=config,
        model_name=s.model,
        nodes=s.nodes,
        gpus_per_node=s.gpus_per_node,
        requested_tokens=tokens,
        dataset_tokens=dict(zip(folders, counts, strict=True)),
        counts_from_files=from_files,
        notes=preset.notes,
    )


def _data_stages(
    s: PlanSettings, counts: list[int], tokenizer: str, decay_start: int
) -> list[DatasetStageArgs]:
    """The data stages: one from step 1 over every folder (``"all"``); or a stable stage on the
    corpus alone and, from ``decay_start``, a decay stage on corpus + selection with the
    selection's token count multiplied by ``s.selection_weight`` (``"decay"``)."""
    vocab, folders = s.preset.model.vocab_size, s.folders
    if s.selection_stage == "all":
        name = "corpus + selection" if len(folders) > 1 else "corpus"
        return [_data_stage(name, 1, folders, counts, tokenizer, vocab)]
    weighted = [counts[0], counts[1] * s.selection_weight]
    return [
        _data_stage(STABLE_STAGE, 1, folders[:1], counts[:1], tokenizer, vocab),
        _data_stage(DECAY_STAGE, decay_start, folders, weighted, tokenizer, vocab),
    ]


def _data_stage(
    name: str,
    start: int,
    folders: list[str],
    counts: Sequence[float],
    tokenizer: str,
    vocab_size: int,
) -> DatasetStageArgs:
    """One stage from step ``start`` over ``folders``, weighted by ``counts``, read by
    ``OldTokenizedBytesFolderDataset``: it returns no positions (the Llama collator needs none)
    and, with ``skip_in_stream`` off, seeks to each sample instead of reading past the samples
    of the other data-parallel ranks."""
    weights = [float(f"{count / sum(counts):.6g}") for count in counts]
    return DatasetStageArgs(
        name=name,
        start_training_step=start,
        data=DataArgs(
            dataset=NanosetDatasetsArgs(
                dataset_folder=folders,
                dataset_weights=weights,
                tokenizer_name=tokenizer,
                vocab_size=vocab_size,
                token_size_in_bytes=token_size_for(vocab_size),
                return_positions=False,
                skip_in_stream=False,
                shuffle_files=False,
                use_old_brrr_dataloader=True,
            ),
            seed=42,
            num_loading_workers=1,
        ),
    )


def first_launch(plan: Plan) -> Plan:
    """The launch before a staged plan's decay: its stable stage alone, stopping at the step
    before the decay stage starts (nanotron saves the final state there).

    nanotron main builds the data of the last stage only and starts a new stage only when it
    resumes at the step before it (``run_train.py``, ``get_dataloader``): a staged config runs
    as the relaunch from this launch's last checkpoint. ``ValueError`` for a one-stage plan."""
    stages = plan.config.data_stages
    if len(stages) < 2:
        raise ValueError("first_launch is for a staged plan (selection_stage 'decay')")
    tokens = replace(plan.config.tokens, train_steps=stages[1].start_training_step - 1)
    config = replace(plan.config, tokens=tokens, data_stages=stages[:1])
    validate(config)
    note = (
        f"first launch of a staged plan: the {stages[0].name!r} stage alone, steps 1 to "
        f"{tokens.train_steps:,}; then launch the staged config, which resumes here"
    )
    return replace(plan, config=config, notes=(*plan.notes, note))


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
    micro = largest_divisor(per_replica, cap)
    return dp, micro, per_replica // micro


def _dataset_tokens(
    folders: list[str], token_counts: Sequence[int] | None, tokenizer_name: str | None
) -> tuple[list[int], str, bool]:
    """(tokens per folder, tokenizer, counted from files?) for ``build_config``."""
    if token_counts is not None:  # one per folder (PlanSettings checks)
        return [int(c) for c in token_counts], tokenizer_name or DEFAULT_TRAINING_TOKENIZER, False
    infos = [read_tokenized_folder(folder, scan_tokens=0) for folder in folders]  # sizes only
    names = {info.tokenizer_name for info in infos if info.tokenizer_name is not None}
    if len(names) > 1:
        raise ValueError(f"the folders were tokenized with different tokenizers: {sorted(names)}")
    tokenizer = names.pop() if names else tokenizer_name or DEFAULT_TRAINING_TOKENIZER
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
    phases = wsd_phases(steps)
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
            lr_warmup_steps=phases.warmup_steps,
            lr_warmup_style="linear",
            lr_decay_style=decay_style,
            lr_decay_steps=phases.decay_steps,
            lr_decay_starting_step=phases.decay_start,
            min_decay_lr=min_lr,
        ),
    )
