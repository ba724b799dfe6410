"""Weak-to-strong proxy pretraining: does a selection help a small model trained from scratch?

Each *arm* is a data mix: the corpus alone, or the corpus plus a selection appended to it (the
selected documents are then seen twice: the paper's up-sampling). Every arm trains a fresh
Llama with transformers' ``Trainer`` (Accelerate underneath: CPU, one GPU, or several through
``accelerate launch``) on the same token budget (``steps x global batch x seq_len``), with the
same WSD learning-rate schedule and the same seed; then the mean token cross-entropy of held-out
sets is measured: held-out documents per domain and synthetic reasoning-style text
(:func:`reasoning_problems`).

Data path of an arm: documents -> token ids (the training tokenizer, EOS after every document)
-> documents shuffled with the seed -> concatenated and cut into ``seq_len`` blocks (the tail
shorter than a block is dropped) -> ``Trainer`` with ``max_steps`` (epochs repeat as needed;
incomplete batches are dropped, so every step sees exactly one global batch).

The random control (:func:`token_matched_random`) takes, per domain, the documents with the
highest ``random_score`` until the token count of the selection it controls is reached, so it
adds as many training-tokenizer tokens as that selection, domain by domain.
"""

from __future__ import annotations

import hashlib
import math
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ai_filters.corpus import DOMAINS, SOURCES, split_text
from ai_filters.documents import FORMATS, SKIP_UNREADABLE, read_documents

EOS_TOKEN = "<|endoftext|>"
WARMUP_FRACTION = 0.001
DECAY_FRACTION = 0.25
FINAL_LR_RATIO = 0.1
REASONING = "reasoning"
HELDOUT_CHUNK_CHARS = 1200
EVAL_BATCH_TOKENS = 2048  # tokens per held-out forward pass (the logits dominate its memory)


# --- the learning-rate schedule ---


@dataclass(frozen=True)
class WSDSchedule:
    """Warmup-stable-decay in the paper's proportions, as a factor of the peak LR per update.

    ``factor(i)`` is the multiplier of the peak LR for optimizer update ``i`` (0-based, the
    convention of ``torch.optim.lr_scheduler.LambdaLR``): linear warmup reaching the peak at
    update ``warmup_steps - 1``; the peak until ``decay_start - 1``; then a linear decay whose
    last update (``total_steps - 1``) runs at exactly ``final_ratio`` of the peak.
    """

    total_steps: int
    warmup_fraction: float = WARMUP_FRACTION
    decay_fraction: float = DECAY_FRACTION
    final_ratio: float = FINAL_LR_RATIO

    def __post_init__(self) -> None:
        if self.total_steps < 2:
            raise ValueError(f"a WSD schedule needs at least 2 steps, got {self.total_steps}")
        if self.decay_start <= self.warmup_steps - 1:
            raise ValueError(
                f"{self.total_steps} steps leave no room between warmup "
                f"({self.warmup_steps}) and decay (from {self.decay_start})"
            )

    @property
    def warmup_steps(self) -> int:
        """Updates in the warmup: 0.1 % of the steps by default, at least one."""
        return max(1, round(self.total_steps * self.warmup_fraction))

    @property
    def decay_steps(self) -> int:
        """Updates in the decay: the last 25 % by default, at least one."""
        return max(1, round(self.total_steps * self.decay_fraction))

    @property
    def decay_start(self) -> int:
        """The first update below the peak."""
        return self.total_steps - self.decay_steps

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if step < self.decay_start:
            return 1.0
        progress = min(1.0, (step - self.decay_start + 1) / self.decay_steps)
        return 1.0 - (1.0 - self.final_ratio) * progress


# --- sizes ---


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

    def llama_config(self, vocab_size: int):
        """A Llama config with tied embeddings (the LM head dominates at a 49k vocabulary)."""
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
            max_position_embeddings=self.seq_len,
            tie_word_embeddings=True,
            attn_implementation="sdpa",
        )


SIZES: dict[str, ProxySize] = {
    # all four demo arms on 2 CPU cores (fp32): 100 steps of 4 x 256 tokens per arm
    "tiny": ProxySize(
        hidden=64,
        layers=2,
        heads=4,
        kv_heads=2,
        intermediate=192,
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
    "gpu": ProxySize(
        hidden=768,
        layers=10,
        heads=12,
        kv_heads=4,
        intermediate=2048,
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


def parameter_count(size: ProxySize, vocab_size: int) -> int:
    """Parameters of the model ``size`` builds (tied embeddings counted once)."""
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(size.llama_config(vocab_size))
    return sum(p.numel() for p in model.parameters())


# --- documents and tokens ---


def read_folder(folder: str | Path) -> list[dict]:
    """Every readable, non-empty document under ``folder`` (jsonl, jsonl.gz, parquet; sorted).

    A document's domain is ``metadata["domain"]``, else the first sub-folder of ``folder`` it
    lies in, else ``"all"``; it is stored back into ``metadata["domain"]``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(FORMATS))
    documents = []
    for path in files:
        relative = path.relative_to(root).parts
        fallback = relative[0] if len(relative) > 1 else "all"
        for document in read_documents(path):
            if document["metadata"].get("skip_reason") == SKIP_UNREADABLE or not document["text"]:
                continue
            domain = document["metadata"].get("domain") or fallback
            documents.append({**document, "metadata": {**document["metadata"], "domain": domain}})
    if not documents:
        raise ValueError(f"{root}: no documents ({', '.join(FORMATS)} files)")
    return documents


class TokenCache:
    """Token ids of document texts (EOS appended, int32 arrays), computed once per distinct text.

    Everything lives in memory: meant for proxy experiments of up to a few hundred million
    tokens, not for a full pretraining corpus.
    """

    def __init__(self, tokenizer, eos_token: str = EOS_TOKEN) -> None:
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.token_to_id(eos_token)
        if self.eos_id is None:
            raise ValueError(f"the tokenizer has no token {eos_token!r}")
        self._ids: dict[str, np.ndarray] = {}

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def add(self, documents: Iterable[dict]) -> None:
        """Tokenize the texts of ``documents`` not seen before."""
        texts = list(dict.fromkeys(d["text"] for d in documents if d["text"] not in self._ids))
        for text, encoding in zip(
            texts, self.tokenizer.encode_batch(texts, add_special_tokens=False), strict=True
        ):
            self._ids[text] = np.array([*encoding.ids, self.eos_id], dtype=np.int32)

    def ids(self, document: dict) -> np.ndarray:
        if document["text"] not in self._ids:
            self.add([document])
        return self._ids[document["text"]]

    def count(self, documents: Iterable[dict]) -> int:
        """Tokens of ``documents`` (with their EOS), counting repeated documents each time."""
        documents = list(documents)
        self.add(documents)
        return sum(len(self._ids[d["text"]]) for d in documents)


def load_tokenizer(spec: str):
    """A ``tokenizers.Tokenizer`` (only the tokenizer, no model weights).

    ``spec``: ``smollm2-135m`` (the embedded model's tokenizer), a ``tokenizer.json`` file, a
    folder holding one, or a Hub id (which needs network access).
    """
    from tokenizers import Tokenizer

    from ai_filters.models import DEFAULT_MODEL, resolve_model_path

    path = Path(resolve_model_path(spec) if spec == DEFAULT_MODEL else spec).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    return Tokenizer.from_pretrained(spec)


def tokens_per_domain(documents: Iterable[dict], tokens: TokenCache) -> dict[str, int]:
    counts: dict[str, int] = {}
    for document in documents:
        domain = document["metadata"]["domain"]
        counts[domain] = counts.get(domain, 0) + len(tokens.ids(document))
    return counts


def token_matched_random(
    scored: Sequence[dict],
    targets: dict[str, int],
    tokens: TokenCache,
    score_key: str = "random_score",
) -> list[dict]:
    """Per domain of ``targets``, documents by descending ``score_key`` up to the target tokens.

    Documents are added while the domain's total is below its target; the document that
    crosses the target is kept only if that brings the total closer to it, so each domain ends
    within one document of its target (at most half of that document away). Ties in the score
    are broken by id. A domain of ``targets`` without scored documents, or a document without
    ``score_key``, raises ``ValueError``.
    """
    picked: list[dict] = []
    for domain, target in sorted(targets.items()):
        pool = [d for d in scored if d["metadata"]["domain"] == domain]
        if not pool:
            raise ValueError(f"no scored documents of domain {domain!r} for the random control")
        unscored = next((d["id"] for d in pool if score_key not in d["metadata"]), None)
        if unscored is not None:
            raise ValueError(f"document {unscored!r} has no metadata[{score_key!r}]")
        pool.sort(key=lambda d: (-float(d["metadata"][score_key]), str(d["id"])))
        total = 0
        for document in pool:
            if total >= target:
                break
            size = len(tokens.ids(document))
            if total + size > target and (total + size - target) > (target - total):
                break
            picked.append(document)
            total += size
    return picked


def pack_blocks(
    token_lists: Sequence[np.ndarray], seq_len: int, seed: int | None = None
) -> torch.Tensor:
    """Concatenate ``token_lists`` (shuffled with ``seed`` unless it is None) into
    ``[n, seq_len]`` blocks; the tail shorter than a block is dropped."""
    order = list(range(len(token_lists)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    stream = np.concatenate([token_lists[index] for index in order])
    count = len(stream) // seq_len
    return torch.from_numpy(stream[: count * seq_len]).long().view(count, seq_len)


class BlockDataset(torch.utils.data.Dataset):
    """Fixed-length token blocks as causal-LM examples (HF models shift the labels themselves)."""

    def __init__(self, blocks: torch.Tensor) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.blocks[index], "labels": self.blocks[index]}


# --- arms ---


@dataclass
class Arm:
    """A data mix: the corpus plus ``selection`` (appended: its documents are seen again)."""

    name: str
    corpus: list[dict]
    selection: list[dict] = field(default_factory=list)

    @property
    def documents(self) -> list[dict]:
        return [*self.corpus, *self.selection]

    def stats(self, tokens: TokenCache) -> dict[str, int]:
        """Tokens of one pass over the mix, of its distinct texts, and of the selection."""
        distinct = {d["text"]: d for d in self.documents}.values()
        return {
            "mix_tokens": tokens.count(self.documents),
            "unique_tokens": tokens.count(distinct),
            "selection_tokens": tokens.count(self.selection),
            "selection_documents": len(self.selection),
        }


# --- held-out text ---


def reasoning_problems(count: int = 40, seed: int = 0) -> list[dict]:
    """Synthetic step-by-step word problems with worked solutions, generated by this project.

    Deterministic for a ``seed``: arithmetic (shopping and change, travel distances), a linear
    equation, and an ordering puzzle solved by chaining comparisons; each document states the
    problem, reasons step by step and ends with the answer. Nothing is taken from a benchmark.
    """
    rng = random.Random(f"reasoning:{seed}")
    makers = (_shopping_problem, _travel_problem, _equation_problem, _ordering_problem)
    documents = []
    for index in range(count):
        text = makers[index % len(makers)](rng)
        documents.append(
            {"text": text, "id": f"{REASONING}/{index}", "metadata": {"domain": REASONING}}
        )
    return documents


NAMES = ("Ada", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jonas")
ITEMS = ("notebooks", "pencils", "apples", "tickets", "stamps", "candles")


def _shopping_problem(rng: random.Random) -> str:
    name, (first, second) = rng.choice(NAMES), rng.sample(ITEMS, 2)
    a, p, b, q = rng.randint(2, 9), rng.randint(2, 15), rng.randint(2, 9), rng.randint(1, 12)
    cost_a, cost_b = a * p, b * q
    total = cost_a + cost_b
    bill = 10 * math.ceil((total + 1) / 10) + 10 * rng.randint(0, 3)
    return (
        f"Problem: {name} buys {a} {first} at ${p} each and {b} {second} at ${q} each, and pays "
        f"with ${bill}. How much change does {name} get?\n"
        f"Solution: Step 1: the {first} cost {a} x {p} = {cost_a} dollars.\n"
        f"Step 2: the {second} cost {b} x {q} = {cost_b} dollars.\n"
        f"Step 3: together that is {cost_a} + {cost_b} = {total} dollars.\n"
        f"Step 4: the change is {bill} - {total} = {bill - total} dollars.\n"
        f"Answer: {bill - total} dollars."
    )


def _travel_problem(rng: random.Random) -> str:
    name = rng.choice(NAMES)
    v, t, w, u = (
        rng.randint(3, 12) * 10,
        rng.randint(1, 5),
        rng.randint(3, 12) * 10,
        rng.randint(1, 5),
    )
    d1, d2 = v * t, w * u
    return (
        f"Problem: {name} drives for {t} hours at {v} km/h and then for {u} hours at {w} km/h. "
        f"How far does {name} drive in total, and how long does the trip take?\n"
        f"Solution: Step 1: distance = speed x time, so the first part is {v} x {t} = {d1} km.\n"
        f"Step 2: the second part is {w} x {u} = {d2} km.\n"
        f"Step 3: the total distance is {d1} + {d2} = {d1 + d2} km.\n"
        f"Step 4: the total time is {t} + {u} = {t + u} hours.\n"
        f"Answer: {d1 + d2} km in {t + u} hours."
    )


def _equation_problem(rng: random.Random) -> str:
    a, x, b = rng.randint(2, 9), rng.randint(-12, 12), rng.randint(1, 40)
    c = a * x + b
    return (
        f"Problem: Solve {a}x + {b} = {c} for x.\n"
        f"Solution: Step 1: subtract {b} from both sides: {a}x = {c} - {b} = {c - b}.\n"
        f"Step 2: divide both sides by {a}: x = {c - b} / {a} = {x}.\n"
        f"Step 3: check: {a} x ({x}) + {b} = {a * x} + {b} = {c}, as required.\n"
        f"Answer: x = {x}."
    )


def _ordering_problem(rng: random.Random) -> str:
    people = rng.sample(NAMES, rng.randint(3, 5))  # tallest first
    facts = [f"{people[i]} is taller than {people[i + 1]}" for i in range(len(people) - 1)]
    stated = [f"{fact}." for fact in facts]
    rng.shuffle(stated)
    steps = [
        f"Step {i + 1}: {fact}, so the order so far is {', '.join(people[: i + 2])}."
        for i, fact in enumerate(facts)
    ]
    return (
        f"Problem: {' '.join(stated)} Who is the tallest and who is the shortest?\n"
        "Solution: chain the comparisons from the top.\n"
        + "\n".join(steps)
        + f"\nAnswer: {people[0]} is the tallest and {people[-1]} is the shortest."
    )


def local_heldout(train_ids: Iterable[str], per_domain: int = 20, seed: int = 0) -> list[dict]:
    """Held-out documents of the demo's four domains, from the sources of the demo corpus.

    Texts are cut as the demo cuts them (:func:`ai_filters.corpus.split_text`); a piece is
    eligible only if no piece of the same source text is in ``train_ids`` (ids look like
    ``<domain>/<name>#<piece>``), so held-out documents share no text with training documents.
    ``per_domain`` pieces are drawn per domain with ``seed``.
    """
    parents = {str(doc_id).split("#")[0] for doc_id in train_ids}
    documents = []
    for domain in DOMAINS:
        collect, source = SOURCES[domain]
        pieces = {
            f"{domain}/{piece}": text
            for name, full in collect().items()
            if f"{domain}/{name}" not in parents
            for piece, text in split_text(name, full, HELDOUT_CHUNK_CHARS).items()
        }
        names = sorted(pieces)
        if len(names) < per_domain:
            raise ValueError(f"only {len(names)} held-out {domain} pieces, asked for {per_domain}")
        for name in sorted(random.Random(f"heldout:{seed}:{domain}").sample(names, per_domain)):
            documents.append(
                {"text": pieces[name], "id": name, "metadata": {"domain": domain, "source": source}}
            )
    return documents


def heldout_blocks(
    documents: Iterable[dict], tokens: TokenCache, seq_len: int
) -> dict[str, torch.Tensor]:
    """Per domain, the held-out documents in the given order packed into ``seq_len`` blocks.

    Unlike training blocks, the last partial block is kept, padded with -100 (which
    :func:`heldout_loss` ignores), so every token of a held-out set counts.
    """
    by_domain: dict[str, list[np.ndarray]] = {}
    for document in documents:
        by_domain.setdefault(document["metadata"]["domain"], []).append(tokens.ids(document))
    blocks = {}
    for domain, pieces in by_domain.items():
        ids = np.concatenate(pieces)
        padded = np.pad(ids, (0, -len(ids) % seq_len), constant_values=-100)
        blocks[domain] = torch.from_numpy(padded).long().view(-1, seq_len)
    return blocks


@torch.no_grad()
def heldout_loss(model, blocks: torch.Tensor, batch_size: int | None = None) -> float:
    """Mean next-token cross-entropy over every predicted token of ``blocks`` (-100 = padding).

    ``batch_size`` blocks per forward pass; default: :data:`EVAL_BATCH_TOKENS` worth of them.
    """
    batch_size = batch_size or max(1, EVAL_BATCH_TOKENS // blocks.shape[1])
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, blocks.shape[0], batch_size):
        batch = blocks[start : start + batch_size].to(device)
        logits = model(input_ids=batch.clamp(min=0)).logits[:, :-1].float()
        labels = batch[:, 1:]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum"
        )
        total += loss.item()
        count += int((labels != -100).sum())
    model.train(was_training)
    return total / count


# --- training ---


def make_trainer_class():
    """``Trainer`` with the WSD schedule (imported lazily: transformers is slow to import)."""
    from transformers import Trainer

    class WSDTrainer(Trainer):
        """A Trainer whose scheduler is :class:`WSDSchedule` over ``max_steps``."""

        def create_scheduler(self, num_training_steps: int, optimizer=None):
            if self.lr_scheduler is None:
                schedule = WSDSchedule(num_training_steps)
                self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                    optimizer or self.optimizer, schedule.factor
                )
            return self.lr_scheduler

    return WSDTrainer


def make_recorder(heldout: dict[str, torch.Tensor], eval_steps: set[int]):
    """A callback that records the LR of every update and held-out losses at ``eval_steps``."""
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        def __init__(self) -> None:
            self.learning_rates: list[float] = []
            self.evals: list[dict] = []

        def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
            self.learning_rates.append(float(optimizer.param_groups[0]["lr"]))

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step in eval_steps:
                losses = {d: heldout_loss(model, blocks) for d, blocks in heldout.items()}
                self.evals.append({"step": state.global_step, **losses})

    return Recorder()


def eval_steps(size: ProxySize) -> set[int]:
    """``eval_points`` steps spread evenly over training; the final step is always one."""
    points = max(1, size.eval_points)
    return {round(size.steps * k / points) for k in range(1, points + 1)}


def world_size() -> int:
    """Processes training together (1 unless started with ``accelerate launch`` / torchrun)."""
    from accelerate import PartialState

    return PartialState().num_processes


@dataclass
class RunContext:
    """What every arm of a run shares: size, seed, tokenizer, held-out blocks."""

    size: ProxySize
    seed: int
    tokens: TokenCache
    heldout: dict[str, torch.Tensor]
    progress: bool = True


def train_arm(arm: Arm, context: RunContext) -> dict:
    """Train a fresh model on ``arm`` and evaluate it; returns the arm's results entry."""
    size, seed = context.size, context.seed
    blocks = pack_blocks([context.tokens.ids(d) for d in arm.documents], size.seq_len, seed)
    with tempfile.TemporaryDirectory(prefix="proxy-") as scratch:  # nothing is saved there
        args = training_arguments(size, seed, scratch, context.progress)
        return _train(arm, context, blocks, args)


def training_arguments(size: ProxySize, seed: int, output_dir: str, progress: bool):
    """Trainer settings shared by every arm: AdamW (0.9, 0.95), weight decay 0.1, clipping 1.0,
    the seed for both initialization and data order, incomplete batches dropped, no saving."""
    from transformers import TrainingArguments

    if size.bf16 and not torch.cuda.is_available():
        raise ValueError("bf16 training needs a GPU; on a CPU use fp32 (--precision fp32)")
    return TrainingArguments(
        output_dir=output_dir,
        max_steps=size.steps,
        per_device_train_batch_size=size.batch_size,
        gradient_accumulation_steps=size.grad_accum,
        learning_rate=size.lr,
        weight_decay=0.1,
        adam_beta1=0.9,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        bf16=size.bf16,
        logging_steps=min(size.logging_steps, size.steps),
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        dataloader_drop_last=True,
        disable_tqdm=not progress,
    )


def _train(arm: Arm, context: RunContext, blocks: torch.Tensor, args) -> dict:
    from transformers import LlamaForCausalLM, set_seed

    size, seed = context.size, context.seed
    global_batch = size.batch_size * size.grad_accum * world_size()
    if blocks.shape[0] < global_batch:
        raise ValueError(
            f"arm {arm.name}: {blocks.shape[0]} blocks of {size.seq_len} tokens, fewer than one "
            f"global batch ({global_batch}); use a smaller --batch-size or --seq-len"
        )
    set_seed(seed)
    model = LlamaForCausalLM(size.llama_config(context.tokens.vocab_size))
    recorder = make_recorder(context.heldout, eval_steps(size))
    trainer = make_trainer_class()(
        model=model, args=args, train_dataset=BlockDataset(blocks), callbacks=[recorder]
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    history = [
        {"step": e["step"], "loss": e["loss"]} for e in trainer.state.log_history if "loss" in e
    ]
    heldout = {d: recorder.evals[-1][d] for d in context.heldout}  # the final step's
    return {
        "name": arm.name,
        "training_tokens": size.steps * global_batch * size.seq_len,
        **arm.stats(context.tokens),
        "blocks": int(blocks.shape[0]),
        "epochs": round(size.steps * global_batch / blocks.shape[0], 3),
        "heldout": heldout,
        "heldout_mean": sum(heldout.values()) / len(heldout),
        "final_train_loss": final_train_loss(history),
        "train_loss": history,
        "heldout_during_training": recorder.evals,
        "learning_rates": recorder.learning_rates,
        "train_seconds": round(seconds, 1),
    }


def final_train_loss(history: Sequence[dict]) -> float:
    """Mean logged training loss over the last 10 % of the logged points (at least one)."""
    tail = history[-max(1, len(history) // 10) :]
    return sum(entry["loss"] for entry in tail) / len(tail)


def run_experiment(
    arms: Sequence[Arm],
    heldout: Sequence[dict],
    size: ProxySize,
    tokens: TokenCache,
    seed: int = 0,
    progress: bool = True,
    on_arm: Callable[[dict], None] | None = None,
) -> dict:
    """Train one model per arm (same size, budget, schedule and seed) and collect results.

    ``heldout`` documents are grouped by ``metadata["domain"]``; each group is one held-out
    set. Returns ``{"settings": ..., "arms": [...]}`` (see :func:`train_arm`); ``on_arm`` is
    called with each arm's entry as soon as it is done.
    """
    names = [arm.name for arm in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be distinct: {names}")
    tokens.add(d for arm in arms for d in arm.documents)
    blocks = heldout_blocks(heldout, tokens, size.seq_len)
    context = RunContext(size, seed, tokens, blocks, progress)
    settings = {
        "size": asdict(size),
        "seed": seed,
        "world_size": world_size(),
        "global_batch": size.batch_size * size.grad_accum * world_size(),
        "tokens_per_step": size.batch_size * size.grad_accum * world_size() * size.seq_len,
        "parameters": parameter_count(size, tokens.vocab_size),
        "vocab_size": tokens.vocab_size,
        "schedule": schedule_summary(size.steps),
        "heldout": {
            d: {
                "documents": sum(1 for h in heldout if h["metadata"]["domain"] == d),
                "tokens": int((b != -100).sum()),
            }
            for d, b in blocks.items()
        },
        "heldout_fingerprint": fingerprint(heldout),
    }
    results = []
    for arm in arms:
        results.append(train_arm(arm, context))
        if on_arm is not None:
            on_arm(results[-1])
    return {"settings": settings, "arms": results}


def schedule_summary(steps: int) -> dict:
    schedule = WSDSchedule(steps)
    return {
        "kind": "WSD (warmup, stable, linear decay)",
        "warmup_steps": schedule.warmup_steps,
        "decay_start": schedule.decay_start,
        "decay_steps": schedule.decay_steps,
        "final_lr_ratio": schedule.final_ratio,
    }


def fingerprint(documents: Iterable[dict]) -> str:
    """sha256 over ids and texts: shows that two runs evaluated the same held-out sets."""
    digest = hashlib.sha256()
    for document in documents:
        digest.update(f"{document['id']}\0{document['text']}\0".encode())
    return "sha256:" + digest.hexdigest()[:16]


def with_overrides(size: ProxySize, **overrides) -> ProxySize:
    """``size`` with the non-None ``overrides`` applied."""
    return replace(size, **{k: v for k, v in overrides.items() if v is not None})


# --- reports ---


def results_table(results: dict) -> str:
    """A markdown table: one row per arm, token counts and held-out losses."""
    arms = results["arms"]
    sets = list(arms[0]["heldout"])
    header = [
        "arm",
        "training tokens",
        "mix tokens",
        "unique tokens",
        "selection tokens",
        "selection docs",
        "epochs",
        "final train loss",
        *[f"{s} loss" for s in sets],
        "mean held-out",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm in arms:
        cells = [
            arm["name"],
            f"{arm['training_tokens']:,}",
            f"{arm['mix_tokens']:,}",
            f"{arm['unique_tokens']:,}",
            f"{arm['selection_tokens']:,}",
            f"{arm['selection_documents']:,}",
            f"{arm['epochs']:.2f}",
            f"{arm['final_train_loss']:.4f}",
            *[f"{arm['heldout'][s]:.4f}" for s in sets],
            f"{arm['heldout_mean']:.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_markdown(results: dict) -> str:
    """``results.md``: the settings in a few lines, then :func:`results_table`."""
    s = results["settings"]
    size, schedule = s["size"], s["schedule"]
    return (
        "# Weak-to-strong proxy pretraining\n\n"
        f"Llama, {s['parameters']:,} parameters (hidden {size['hidden']}, {size['layers']} "
        f"layers, tied embeddings, vocabulary {s['vocab_size']:,}), trained from scratch per "
        f"arm: {size['steps']} steps of {s['global_batch']} x {size['seq_len']} tokens, peak LR "
        f"{size['lr']:g}, WSD schedule (warmup {schedule['warmup_steps']} step(s), the peak until "
        f"step {schedule['decay_start']}, then a linear decay over the last "
        f"{schedule['decay_steps']} steps to {schedule['final_lr_ratio']:.0%} of the peak), "
        f"seed {s['seed']}.\n\n"
        "Held-out losses: mean token cross-entropy (nats) of documents not in the corpus, per "
        "domain, and of synthetic step-by-step reasoning problems generated by the project. "
        "`mix tokens`: one pass over corpus + selection; `unique tokens`: distinct documents "
        "only; `epochs`: training tokens / packed mix tokens.\n\n" + results_table(results) + "\n"
    )


def plot_curves(results: dict, png: str | Path) -> Path:
    """Training loss per step and held-out mean loss at the evaluation points, per arm."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4), layout="constrained")
    train, held = figure.subplots(1, 2)
    for arm in results["arms"]:
        steps = [e["step"] for e in arm["train_loss"]]
        train.plot(steps, [e["loss"] for e in arm["train_loss"]], label=arm["name"], lw=1)
        points = arm["heldout_during_training"]
        means = [sum(e[d] for d in arm["heldout"]) / len(arm["heldout"]) for e in points]
        held.plot([e["step"] for e in points], means, marker="o", label=arm["name"])
    train.set(xlabel="step", ylabel="training loss", title="training loss")
    held.set(xlabel="step", ylabel="mean held-out loss", title="held-out loss (all sets)")
    train.legend(fontsize=8)
    held.legend(fontsize=8)
    figure.savefig(png, dpi=110)
    return Path(png)
