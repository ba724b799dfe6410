"""Training the arms of a proxy run with transformers' ``Trainer``: a fresh Llama per arm and seed.

Every arm gets the same size, token budget (``steps x global batch x seq_len``), schedule and
seeds; each seed trains every arm once (:func:`train_arm` says what a seed changes). The
schedule is ``Trainer``'s own ``warmup_stable_decay`` in the paper's proportions
(:func:`ai_filters.training.wsd_phases`); the held-out sets are ``Trainer``'s evaluation
datasets, evaluated every ``ceil(steps / eval_points)`` steps and at the last step.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import torch

from ai_filters.proxy.data import Arm, BlockDataset, TokenCache, pack_blocks
from ai_filters.proxy.heldout import fingerprint, heldout_blocks
from ai_filters.proxy.summary import CONFIDENCE, INTERVAL_METHOD, MEAN_HELDOUT, arm_spreads, spread
from ai_filters.training import FINAL_LR_DIVISOR, SHAPES, LlamaShape, parameter_count, wsd_phases

FINAL_LR_RATIO = 1 / FINAL_LR_DIVISOR


@dataclass(frozen=True)
class ProxySize:
    """Model shape and training budget of every arm (the same for all arms of a run)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    seq_len: int
    batch_size: int  # sequences per device and micro-step
    grad_accum: int
    steps: int
    lr: float
    bf16: bool
    logging_steps: int
    eval_points: int  # held-out evaluations during training, the last one at the final step

    def shape(self, vocab_size: int) -> LlamaShape:
        """The model's shape for a tokenizer of ``vocab_size`` ids, with tied embeddings (the
        LM head dominates at a 49k vocabulary)."""
        return LlamaShape(
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
            vocab_size=vocab_size,
            tie_word_embeddings=True,
        )

    def llama_config(self, vocab_size: int):
        """transformers' ``LlamaConfig`` of :meth:`shape`, with SDPA attention."""
        from transformers import LlamaConfig

        return LlamaConfig(
            **asdict(self.shape(vocab_size)),
            max_position_embeddings=self.seq_len,
            attn_implementation="sdpa",
        )


def _proxy_size(shape: LlamaShape, **budget) -> ProxySize:
    """A size of the model ``shape`` (from ``ai_filters.training.SHAPES``) and ``budget``."""
    return ProxySize(
        hidden=shape.hidden_size,
        layers=shape.num_hidden_layers,
        heads=shape.num_attention_heads,
        kv_heads=shape.num_key_value_heads,
        intermediate=shape.intermediate_size,
        **budget,
    )


SIZES: dict[str, ProxySize] = {
    # all four demo arms on 2 CPU cores (fp32): 100 steps of 4 x 256 tokens per arm
    "tiny": _proxy_size(
        SHAPES["proxy-tiny"],
        seq_len=256,
        batch_size=4,
        grad_accum=1,
        steps=100,
        lr=3e-3,
        bf16=False,
        logging_steps=1,
        eval_points=2,
    ),
    # about 100M parameters for one GPU (bf16 mixed precision): 64 sequences of 1,024 tokens
    # per step (16 x 4 accumulation), 4,000 steps = 262M tokens per arm
    "gpu": _proxy_size(
        SHAPES["proxy-gpu"],
        seq_len=1024,
        batch_size=16,
        grad_accum=4,
        steps=4000,
        lr=1e-3,
        bf16=True,
        logging_steps=10,
        eval_points=8,
    ),
}


def with_overrides(size: ProxySize, **overrides) -> ProxySize:
    """``size`` with the non-None ``overrides`` applied."""
    return replace(size, **{k: v for k, v in overrides.items() if v is not None})


def world_size() -> int:
    """Processes training together (1 unless started with ``accelerate launch`` / torchrun)."""
    from accelerate import PartialState

    return PartialState().num_processes


def schedule_summary(steps: int) -> dict:
    """The WSD phases of ``steps`` as recorded in ``results.json``."""
    phases = wsd_phases(steps)
    return {
        "kind": "WSD (transformers' warmup_stable_decay: linear warmup, stable, linear decay)",
        "warmup_steps": phases.warmup_steps,
        "decay_start": phases.decay_start,
        "decay_steps": phases.decay_steps,
        "final_lr_ratio": FINAL_LR_RATIO,
    }


def training_arguments(size: ProxySize, seed: int, output_dir: str, progress: bool):
    """Trainer settings shared by every arm.

    AdamW (0.9, 0.95), weight decay 0.1, clipping 1.0; ``seed`` as ``seed`` and ``data_seed``
    (the order the sampler draws the training blocks in); incomplete training batches dropped
    (every step sees one global batch); no saving. The schedule is ``warmup_stable_decay`` with
    :func:`~ai_filters.training.wsd_phases`: the scheduler value at step index ``i`` drives
    update ``i + 1`` (``LambdaLR``'s convention, nanotron's too), so the warmup starts at
    ``FINAL_LR_RATIO`` of the peak (transformers warms up from its ``min_lr_ratio``), the peak
    holds from ``warmup_steps`` to ``decay_start`` (75 %), and the linear decay reaches
    ``FINAL_LR_RATIO`` of the peak at index ``steps``, the value after the last update.
    Held-out sets are evaluated one block per forward pass, so ``dataloader_drop_last`` drops
    none of them (see :func:`heldout_blocks`).
    """
    from transformers import TrainingArguments

    if size.bf16 and not torch.cuda.is_available():
        raise ValueError("bf16 training needs a GPU; on a CPU use fp32 (--precision fp32)")
    phases = wsd_phases(size.steps)
    if phases.stable_steps < 0:
        raise ValueError(
            f"{size.steps} steps leave no room for a warmup of {phases.warmup_steps} and a decay "
            f"of {phases.decay_steps} step(s): train for at least 2 steps"
        )
    return TrainingArguments(
        output_dir=output_dir,
        max_steps=size.steps,
        per_device_train_batch_size=size.batch_size,
        per_device_eval_batch_size=1,
        gradient_accumulation_steps=size.grad_accum,
        learning_rate=size.lr,
        lr_scheduler_type="warmup_stable_decay",
        warmup_steps=phases.warmup_steps,
        lr_scheduler_kwargs={
            "num_decay_steps": phases.decay_steps,
            "decay_type": "linear",
            "min_lr_ratio": FINAL_LR_RATIO,
        },
        weight_decay=0.1,
        adam_beta1=0.9,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        bf16=size.bf16,
        eval_strategy="steps",
        eval_steps=math.ceil(size.steps / max(1, size.eval_points)),
        prediction_loss_only=True,
        logging_steps=min(size.logging_steps, size.steps),
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        dataloader_drop_last=True,
        disable_tqdm=not progress,
    )


def learning_rate_recorder():
    """A callback that records the learning rate every optimizer update runs at (``.values``)."""
    from transformers import TrainerCallback

    class LearningRates(TrainerCallback):
        def __init__(self) -> None:
            self.values: list[float] = []

        def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
            self.values.append(float(optimizer.param_groups[0]["lr"]))

    return LearningRates()


@dataclass
class RunContext:
    """What every arm of a run with one seed shares: size, seed, tokenizer, held-out blocks."""

    size: ProxySize
    seed: int
    tokens: TokenCache
    heldout: dict[str, torch.Tensor]
    progress: bool = True


def initial_model(size: ProxySize, vocab_size: int, seed: int):
    """A fresh ``LlamaForCausalLM`` of ``size``, its weights drawn after ``set_seed(seed)``
    (the same weights for every arm trained with ``seed``)."""
    from transformers import LlamaForCausalLM, set_seed

    set_seed(seed)
    return LlamaForCausalLM(size.llama_config(vocab_size))


def train_arm(arm: Arm, context: RunContext) -> dict:
    """Train a fresh model on ``arm`` with ``context.seed`` and evaluate it.

    The seed changes three things, and nothing else: the initial weights
    (:func:`initial_model`), the order the arm's documents are concatenated in before they
    are cut into blocks (:func:`~ai_filters.proxy.data.pack_blocks`), and the order
    ``Trainer``'s sampler draws the blocks in, epoch after epoch (``TrainingArguments.seed``
    and ``data_seed``). Returns one run: the arm's token counts, then ``seed``, held-out
    losses, curves, learning rates and time.
    """
    size, seed = context.size, context.seed
    blocks = pack_blocks([context.tokens.ids(d) for d in arm.documents], size.seq_len, seed)
    with tempfile.TemporaryDirectory(prefix="proxy-") as scratch:  # nothing is saved there
        args = training_arguments(size, seed, scratch, context.progress)
        return _train(arm, context, blocks, args)


def _train(arm: Arm, context: RunContext, blocks: torch.Tensor, args) -> dict:
    from transformers import Trainer

    size = context.size
    global_batch = size.batch_size * size.grad_accum * world_size()
    if blocks.shape[0] < global_batch:
        raise ValueError(
            f"arm {arm.name}: {blocks.shape[0]} blocks of {size.seq_len} tokens, fewer than one "
            f"global batch ({global_batch}); use a smaller --batch-size or --seq-len"
        )
    model = initial_model(size, context.tokens.vocab_size, context.seed)
    learning_rates = learning_rate_recorder()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=BlockDataset(blocks),
        eval_dataset={name: BlockDataset(b) for name, b in context.heldout.items()},
        callbacks=[learning_rates],
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    log = trainer.state.log_history
    history = [{"step": e["step"], "loss": e["loss"]} for e in log if "loss" in e]
    evaluations = heldout_history(log, list(context.heldout))
    if evaluations[-1]["step"] != size.steps:
        raise RuntimeError(f"arm {arm.name}: Trainer did not evaluate at the last step")
    heldout = {name: evaluations[-1][name] for name in context.heldout}
    return {
        "name": arm.name,
        "training_tokens": size.steps * global_batch * size.seq_len,
        **arm.stats(context.tokens),
        "blocks": int(blocks.shape[0]),
        "epochs": round(size.steps * global_batch / blocks.shape[0], 3),
        "seed": context.seed,
        "heldout": heldout,
        "heldout_mean": sum(heldout.values()) / len(heldout),
        "final_train_loss": final_train_loss(history),
        "train_loss": history,
        "heldout_during_training": evaluations,
        "learning_rates": learning_rates.values,
        "train_seconds": round(seconds, 1),
    }


# what a run shares with the other runs of its arm (the rest is the run's own, under "runs")
ARM_FIELDS = (
    "name",
    "training_tokens",
    "mix_tokens",
    "unique_tokens",
    "selection_tokens",
    "selection_documents",
    "blocks",
    "epochs",
)


def arm_entry(runs: Sequence[dict]) -> dict:
    """An arm's results from its runs (one per seed): the fields every run shares (checked to
    be equal: the same budget and mix for every seed), ``heldout`` and ``heldout_mean`` as
    mean / std / values over seeds (:mod:`ai_filters.proxy.summary`), the same for
    ``final_train_loss``, and ``runs``: each run's own fields."""
    shared = {key: runs[0][key] for key in ARM_FIELDS}
    for run in runs[1:]:
        differing = [key for key in ARM_FIELDS if run[key] != shared[key]]
        if differing:
            raise RuntimeError(f"arm {shared['name']}: seed {run['seed']} changed {differing}")
    spreads = arm_spreads(runs)
    return {
        **shared,
        "heldout": {name: spreads[name] for name in runs[0]["heldout"]},
        "heldout_mean": spreads[MEAN_HELDOUT],
        "final_train_loss": spread([run["final_train_loss"] for run in runs]),
        "runs": [{k: v for k, v in run.items() if k not in ARM_FIELDS} for run in runs],
    }


def heldout_history(log_history: Sequence[dict], names: Sequence[str]) -> list[dict]:
    """``[{"step": s, <set>: eval_<set>_loss, ...}]`` per evaluation in Trainer's log."""
    points: dict[int, dict] = {}
    for entry in log_history:
        for name in names:
            if f"eval_{name}_loss" in entry:
                point = points.setdefault(entry["step"], {"step": entry["step"]})
                point[name] = entry[f"eval_{name}_loss"]
    return [points[step] for step in sorted(points)]


def final_train_loss(history: Sequence[dict]) -> float:
    """Mean logged training loss over the last 10 % of the logged points (at least one)."""
    tail = history[-max(1, len(history) // 10) :]
    return sum(entry["loss"] for entry in tail) / len(tail)


def run_experiment(
    arms: Sequence[Arm],
    heldout: Sequence[dict],
    size: ProxySize,
    tokens: TokenCache,
    seeds: Sequence[int] = (0,),
    progress: bool = True,
    on_run: Callable[[dict], None] | None = None,
) -> dict:
    """Train one model per arm and seed (same size, budget and schedule) and collect results.

    Seeds are the outer loop: every arm is trained with the first seed before any arm gets the
    second. ``heldout`` documents are grouped by ``metadata["domain"]``; each group is one
    held-out set, packed by :func:`heldout_blocks`, the same for every seed. Returns
    ``{"settings": ..., "arms": [...]}``, one :func:`arm_entry` per arm in the given order;
    ``on_run`` is called with each run (:func:`train_arm`) as soon as it is done.
    """
    names = [arm.name for arm in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be distinct: {names}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one: {list(seeds)}")
    tokens.add(d for arm in arms for d in arm.documents)
    processes = world_size()
    blocks = heldout_blocks(heldout, tokens, size.seq_len, processes)
    global_batch = size.batch_size * size.grad_accum * processes
    settings = {
        "size": asdict(size),
        "seeds": list(seeds),
        "world_size": processes,
        "global_batch": global_batch,
        "tokens_per_step": global_batch * size.seq_len,
        "parameters": parameter_count(size.shape(tokens.vocab_size)),
        "vocab_size": tokens.vocab_size,
        "schedule": schedule_summary(size.steps),
        "heldout": {d: _heldout_record(heldout, d, b, tokens) for d, b in blocks.items()},
        "heldout_fingerprint": fingerprint(heldout),
        "interval": {"method": INTERVAL_METHOD, "confidence": CONFIDENCE},
    }
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for seed in seeds:
        context = RunContext(size, seed, tokens, blocks, progress)
        for arm in arms:
            runs[arm.name].append(train_arm(arm, context))
            if on_run is not None:
                on_run(runs[arm.name][-1])
    return {"settings": settings, "arms": [arm_entry(runs[name]) for name in names]}


def _heldout_record(
    heldout: Sequence[dict], domain: str, blocks: torch.Tensor, tokens: TokenCache
) -> dict:
    """Documents of a held-out set, tokens evaluated, tokens left out (see heldout_blocks)."""
    documents = [h for h in heldout if h["metadata"]["domain"] == domain]
    return {
        "documents": len(documents),
        "tokens": blocks.numel(),
        "tokens_left_out": tokens.count(documents) - blocks.numel(),
    }
