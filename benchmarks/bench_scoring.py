"""Speed, memory, padding and agreement of AttentionInfluence scoring: the engine against the
naive way.

The naive way is what a user writes first: two model copies (the second with the retrieval
heads' query rows zeroed, which is exactly uniform masking on these Llama-shaped models), and
two full Hugging Face forward passes with ``labels=input_ids`` per document at batch size 1.
The engine is ``ai_filters.scoring.ScoringEngine.score_token_ids``, one document per row
(``engine``) or several documents packed per row (``packed``). All score the same documents:
real text of the four demo domains, tokenized with the embedded tokenizer, cut either into
windows of exactly ``--doc-tokens`` tokens (``--lengths fixed``) or into documents whose
lengths follow a web corpus (``--lengths web-mix``: log-normal around a median of
``--median-tokens``, truncated at ``--max-tokens``).

Each variant runs in its own subprocess (this script re-invoked with a hidden ``--variant``
flag), so its peak memory is its own; with ``--rounds`` the variants alternate. The parent then
measures a matmul peak on the same device and writes one JSON file under
``benchmarks/results/``. Run with ``--help`` for the options.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import itertools
import json
import math
import os
import platform
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ai_filters.corpus import DOMAINS, SOURCES, local_corpus
from ai_filters.models import (
    DTYPES,
    LoadedModel,
    default_dtype,
    embedded_model_folder,
    load_model,
)
from ai_filters.numerics import loss_rtol, score_tolerance
from ai_filters.scoring import ScoringConfig, ScoringEngine, shared_prefix_layers

RESULTS_DIR = Path(__file__).resolve().parent / "results"
VARIANTS = ("naive", "engine", "packed")
ENGINE_VARIANTS = ("engine", "packed")
EMBEDDED = "smollm2-135m"
RANDOM_LLAMA = "llama-1.7b-random"
TINY_LLAMA = "llama-tiny-random"
MODELS = (EMBEDDED, RANDOM_LLAMA, TINY_LLAMA)
SEED = 0
# the retrieval heads our detector finds in the embedded SmolLM2-135M
EMBEDDED_HEADS = [
    (18, 6), (17, 3), (20, 6), (18, 7), (23, 2), (17, 4), (20, 5),
    (23, 7), (21, 8), (22, 7), (23, 8), (21, 5), (24, 2), (23, 1),
]  # fmt: skip
# the shape of SmolLM2-1.7B, with random weights
RANDOM_LLAMA_SHAPE = {
    "hidden_size": 2048,
    "num_hidden_layers": 24,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "intermediate_size": 8192,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
    "max_position_embeddings": 8192,
    "rope_theta": 130000.0,
    "rms_norm_eps": 1e-5,
}
# the same code path at a size a CPU runs in seconds (gpu_check.sh --cpu-smoke)
TINY_LLAMA_SHAPE = {
    **RANDOM_LLAMA_SHAPE,
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "intermediate_size": 256,
}
HEAD_FRACTION = 0.05
PEAK_SECONDS = 2.0
MIB = 2**20


# ------------------------------------------------------------------------------- arguments
def demo_documents_parser(
    description: str, docs_per_domain: int, max_tokens: int
) -> argparse.ArgumentParser:
    """The options shared by the benchmarks that score demo-corpus documents: the device, how
    many documents per domain, how the corpus is cut, tokens scored each, the JSON's folder."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--docs-per-domain", type=int, default=docs_per_domain, help="demo documents per domain"
    )
    parser.add_argument(
        "--chunk-chars", type=int, default=3000, help="demo corpus pieces of about this many chars"
    )
    parser.add_argument(
        "--max-tokens", type=int, default=max_tokens, help="tokens scored per document"
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; ``--variant``, ``--docs-file`` and ``--result-file`` are internal."""
    defaults = ScoringConfig()
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark AttentionInfluence scoring: the naive baseline (two model copies, two "
            "Hugging Face forward passes with labels per document, batch size 1) against "
            "ai_filters' ScoringEngine (one document per row, or packed), on the same real "
            "documents. Reports tokens/s, the speed-up, the share of fed tokens that are "
            "padding, the largest score and loss differences, each variant's peak memory "
            "(each runs in its own subprocess) and model FLOP utilisation against a matmul "
            "peak measured in the same run; writes JSON to benchmarks/results/."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run")
    parser.add_argument(
        "--dtype",
        choices=tuple(DTYPES),
        default=None,
        help="model dtype; default float32 on cpu, bfloat16 on cuda (also the matmul peak's)",
    )
    parser.add_argument(
        "--model",
        choices=MODELS,
        default=EMBEDDED,
        help=f"{EMBEDDED}: the embedded SmolLM2-135M with its 14 detected retrieval heads; "
        f"{RANDOM_LLAMA}: random weights in SmolLM2-1.7B's shape (24 layers x 32 heads, "
        "hidden 2048), 5%% of its heads drawn from its middle layers with a fixed seed (GPU); "
        f"{TINY_LLAMA}: the same code path in a 4-layer shape (smoke tests)",
    )
    parser.add_argument("--num-docs", type=int, default=32, help="documents to score")
    parser.add_argument(
        "--lengths",
        choices=("fixed", "web-mix"),
        default="fixed",
        help="fixed: every document --doc-tokens long; web-mix: log-normal lengths (median "
        "--median-tokens, sigma --length-sigma) truncated at --max-tokens",
    )
    parser.add_argument("--doc-tokens", type=int, default=512, help="fixed: tokens per document")
    parser.add_argument(
        "--max-tokens", type=int, default=2048, help="web-mix: the longest document"
    )
    parser.add_argument("--median-tokens", type=int, default=600, help="web-mix: the median")
    parser.add_argument(
        "--length-sigma",
        type=float,
        default=1.0,
        help="web-mix: standard deviation of log(length); 1.0 puts the mean at 1.65x the median",
    )
    parser.add_argument(
        "--variants",
        default="naive,engine",
        help=f"comma-separated, from {', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="engine: rows per batch"
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=defaults.batch_tokens,
        help="engine: padded tokens per batch (default: the engine's choice for the device)",
    )
    parser.add_argument(
        "--pack-tokens",
        type=int,
        default=None,
        help="packed: tokens per row (default: the engine's, the longest document)",
    )
    parser.add_argument(
        "--engine-shared-layers",
        type=int,
        default=None,
        help="for the FLOP count: bottom layers the engine runs once for both passes; default "
        "ai_filters.scoring.shared_prefix_layers(heads)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the variants alternately this many times and keep each one's fastest round "
        "(on a noisy machine; every round's time and speed-up is in the JSON)",
    )
    parser.add_argument(
        "--compile", action="store_true", help="engine variants: ScoringConfig(compile=True)"
    )
    parser.add_argument(
        "--out-dir", type=Path, default=RESULTS_DIR, help="folder for the JSON result"
    )
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--docs-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.variant_list = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = set(args.variant_list) - set(VARIANTS)
    if unknown or not args.variant_list:
        parser.error(f"--variants: choose from {', '.join(VARIANTS)}")
    if not set(args.variant_list) & set(ENGINE_VARIANTS):
        parser.error("--variants must include engine or packed")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.num_docs < 1 or args.doc_tokens < 2 or args.max_tokens < 2:
        parser.error("--num-docs must be at least 1, --doc-tokens and --max-tokens at least 2")
    return args


def run_dtype(args: argparse.Namespace) -> torch.dtype:
    """The dtype asked for, or the device's default (fp32 on CPU, bf16 on GPU)."""
    return DTYPES[args.dtype] if args.dtype else default_dtype(torch.device(args.device))


def longest_document(args: argparse.Namespace) -> int:
    return args.doc_tokens if args.lengths == "fixed" else args.max_tokens


# ------------------------------------------------------------------------------- documents
def embedded_tokenizer():
    """The embedded model's tokenizer (SmolLM2's 49,152-token vocabulary), without the model."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_model_folder())


def document_lengths(args: argparse.Namespace) -> list[int]:
    """Every document's length: ``--doc-tokens``, or log-normal draws (seeded) truncated at
    ``--max-tokens``, at least 2 tokens."""
    if args.lengths == "fixed":
        return [args.doc_tokens] * args.num_docs
    draws = np.random.default_rng(SEED).lognormal(
        math.log(args.median_tokens), args.length_sigma, args.num_docs
    )
    return [int(min(max(round(length), 2), args.max_tokens)) for length in draws]


def _domain_stream(texts: Sequence[str], tokenizer) -> Iterator[int]:
    """The tokens of one domain's texts, one after another (a blank line between texts)."""
    for text in texts:
        yield from tokenizer(text + "\n\n").input_ids


def benchmark_documents(tokenizer, lengths: Sequence[int]) -> list[dict]:
    """One document per length: the next that many tokens of a domain, the domains in turn.

    A domain whose text runs out drops out of the rotation; the others fill in.
    """
    per_domain = min(len(collect()) for collect, _ in SOURCES.values())
    corpus = local_corpus(docs_per_domain=per_domain, seed=SEED)
    streams = {
        domain: _domain_stream(
            [doc["text"] for doc in corpus if doc["metadata"]["domain"] == domain], tokenizer
        )
        for domain in DOMAINS
    }
    documents: list[dict] = []
    while streams and len(documents) < len(lengths):
        for domain in list(streams):
            if len(documents) == len(lengths):
                break
            wanted = lengths[len(documents)]
            ids = list(itertools.islice(streams[domain], wanted))
            if len(ids) < wanted:
                del streams[domain]
            else:
                documents.append({"domain": domain, "ids": ids})
    if len(documents) < len(lengths):
        raise SystemExit(
            f"the demo corpus holds only {len(documents)} documents of these lengths; "
            "lower --num-docs or the lengths"
        )
    return documents


# ---------------------------------------------------------------------------------- models
def benchmark_heads(model_name: str) -> list[tuple[int, int]]:
    """The heads to mask: the detected ones of the embedded model, or :func:`random_heads`."""
    if model_name == EMBEDDED:
        return list(EMBEDDED_HEADS)
    return random_heads(RANDOM_LLAMA_SHAPE if model_name == RANDOM_LLAMA else TINY_LLAMA_SHAPE)


def random_heads(shape: dict) -> list[tuple[int, int]]:
    """5 % of the heads (at least one), drawn from the middle layers (the second half's first
    three quarters, where retrieval heads sit) with a fixed seed."""
    num_layers, num_heads = shape["num_hidden_layers"], shape["num_attention_heads"]
    count = max(1, math.ceil(HEAD_FRACTION * num_layers * num_heads))
    layers = range(num_layers // 2, max(num_layers // 2 + 1, num_layers * 7 // 8))
    pool = [(layer, head) for layer in layers for head in range(num_heads)]
    return sorted(random.Random(SEED).sample(pool, count))


def random_llama(name: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """A Llama of ``name``'s shape with random weights (seeded), built directly on ``device``."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(SEED)
    with device:
        model = AutoModelForCausalLM.from_config(model_config(name), dtype=dtype)
    model.eval().requires_grad_(False)
    return LoadedModel(name, model, embedded_tokenizer(), device, dtype)


def model_config(model_name: str):
    """The configuration of the benchmarked model, without its weights."""
    from transformers import AutoConfig, LlamaConfig

    if model_name == EMBEDDED:
        return AutoConfig.from_pretrained(embedded_model_folder())
    shape = RANDOM_LLAMA_SHAPE if model_name == RANDOM_LLAMA else TINY_LLAMA_SHAPE
    return LlamaConfig(**shape, attn_implementation="sdpa")


def benchmark_model(args: argparse.Namespace) -> tuple[LoadedModel, list[tuple[int, int]]]:
    """The model to score with and the heads to mask."""
    device, dtype = torch.device(args.device), run_dtype(args)
    if args.model == EMBEDDED:
        loaded = load_model(EMBEDDED, device=device, dtype=dtype)
    else:
        loaded = random_llama(args.model, device, dtype)
    return loaded, benchmark_heads(args.model)


def reference_copy(loaded: LoadedModel, heads: Sequence[tuple[int, int]]) -> torch.nn.Module:
    """A deep copy of the model whose masked heads have zero ``q_proj`` output rows (exactly
    uniform attention for Llama-shaped models, which have no norm after ``q_proj``)."""
    reference = copy.deepcopy(loaded.model)
    rows = loaded.head_dim
    with torch.no_grad():
        for layer, head in heads:
            q_proj = reference.model.layers[layer].self_attn.q_proj
            q_proj.weight[head * rows : (head + 1) * rows] = 0
            if q_proj.bias is not None:
                q_proj.bias[head * rows : (head + 1) * rows] = 0
    return reference


# ------------------------------------------------------------------------------------ FLOPs
def layer_linear_flops(layer: torch.nn.Module) -> int:
    """FLOPs per token of a decoder layer's linear maps: 2 per weight (one multiply-add)."""
    return sum(
        2 * module.weight.numel()
        for module in layer.modules()
        if isinstance(module, torch.nn.Linear)
    )


def attention_flops(layer: torch.nn.Module, tokens: int) -> int:
    """FLOPs of causal QK^T and AV over one document: position i sees i + 1 keys."""
    query_width = layer.self_attn.q_proj.out_features
    return 2 * 2 * query_width * tokens * (tokens + 1) // 2


def scoring_flops(loaded: LoadedModel, lengths: Sequence[int], shared_layers: int) -> int:
    """Useful FLOPs of scoring documents of ``lengths``: the bottom ``shared_layers`` layers
    once, the others and the output layer twice (padding and packing overheads not counted)."""
    total = 0
    head = loaded.model.get_output_embeddings().weight.numel()
    for tokens in lengths:
        for index, layer in enumerate(loaded.model.model.layers):
            passes = 1 if index < shared_layers else 2
            total += passes * (layer_linear_flops(layer) * tokens + attention_flops(layer, tokens))
        total += 2 * 2 * head * tokens
    return total


# -------------------------------------------------------------------------------- variants
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], object], device: torch.device) -> tuple[object, float]:
    """``function()`` and its wall-clock seconds, with the device synchronized around it."""
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - start


def naive_losses(
    base: torch.nn.Module, reference: torch.nn.Module, documents: Sequence[list[int]], device
) -> list[tuple[float, float]]:
    """``(loss_base, loss_ref)`` per document, one document and two forward passes at a time."""
    losses = []
    with torch.inference_mode():
        for ids in documents:
            input_ids = torch.tensor([ids], device=device)
            loss_base = base(input_ids=input_ids, labels=input_ids).loss.item()
            loss_ref = reference(input_ids=input_ids, labels=input_ids).loss.item()
            losses.append((loss_base, loss_ref))
    return losses


def run_naive(
    loaded: LoadedModel, heads: list[tuple[int, int]], documents: list[list[int]]
) -> dict:
    """The naive baseline: warm up on one document, then time all of them. Every row holds one
    whole document, so no position fed is padding."""
    reference = reference_copy(loaded, heads)

    def score(docs: list[list[int]]) -> list[tuple[float, float]]:
        return naive_losses(loaded.model, reference, docs, loaded.device)

    _, warmup = timed(lambda: score(documents[:1]), loaded.device)
    losses, elapsed = timed(lambda: score(documents), loaded.device)
    lengths = [len(ids) for ids in documents]
    flops = scoring_flops(loaded, lengths, shared_layers=0)
    return {
        "losses": losses,
        "warmup_s": warmup,
        "elapsed_s": elapsed,
        "flops": flops,
        "fed_tokens": sum(lengths),
        "real_tokens": sum(lengths),
    }


def engine_config(args: argparse.Namespace, packing: bool) -> ScoringConfig:
    """The engine's configuration for the engine (``packing=False``) or packed variant."""
    return ScoringConfig(
        max_tokens=longest_document(args),
        batch_size=args.batch_size,
        batch_tokens=args.batch_tokens,
        packing=packing,
        pack_tokens=args.pack_tokens,
        compile=args.compile,
    )


def run_engine(
    loaded: LoadedModel,
    heads: list[tuple[int, int]],
    documents: list[list[int]],
    args: argparse.Namespace,
    packing: bool,
) -> dict:
    """The engine: warm up on a few documents, then time all documents."""
    engine = ScoringEngine(loaded, heads, engine_config(args, packing))
    warm = documents[: max(1, min(8, len(documents) // 4))]
    _, warmup = timed(lambda: engine.score_token_ids(warm), loaded.device)
    engine.feed.real = engine.feed.fed = 0
    scores, elapsed = timed(lambda: engine.score_token_ids(documents), loaded.device)
    skipped = [score.skip_reason for score in scores if score.skip_reason is not None]
    if skipped:
        raise RuntimeError(f"the engine skipped {len(skipped)} documents: {skipped[:3]}")
    shared = (
        args.engine_shared_layers
        if args.engine_shared_layers is not None
        else shared_prefix_layers(heads)
    )
    return {
        "losses": [(score.loss_base, score.loss_ref) for score in scores],
        "warmup_s": warmup,
        "elapsed_s": elapsed,
        "flops": scoring_flops(loaded, [len(ids) for ids in documents], shared),
        "shared_layers": shared,
        "batch_tokens": engine.config.batch_tokens,
        "packing": engine.config.packing,
        "fed_tokens": engine.feed.fed,
        "real_tokens": engine.feed.real,
    }


def peak_memory(device: torch.device) -> dict:
    """This process's peak resident memory, and on a GPU its peak allocated memory (MiB)."""
    memory = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        memory["peak_gpu_allocated_mib"] = torch.cuda.max_memory_allocated(device) / MIB
    return memory


def run_variant(args: argparse.Namespace) -> None:
    """Subprocess entry: load, score the documents of ``--docs-file``, write ``--result-file``."""
    documents = json.loads(args.docs_file.read_text())["documents"]
    start = time.perf_counter()
    loaded, heads = benchmark_model(args)
    load_s = time.perf_counter() - start
    if args.variant == "naive":
        result = run_naive(loaded, heads, documents)
    else:
        result = run_engine(loaded, heads, documents, args, packing=args.variant == "packed")
    result.update(peak_memory(loaded.device), load_s=load_s, threads=torch.get_num_threads())
    args.result_file.write_text(json.dumps(result))


def spawn_variant(variant: str, argv: Sequence[str], docs_file: Path, work: Path) -> dict:
    """Run one variant in a fresh interpreter and read back its JSON result."""
    result_file = work / f"{variant}.json"
    command = [sys.executable, str(Path(__file__).resolve()), *argv]
    command += ["--variant", variant, "--docs-file", str(docs_file)]
    command += ["--result-file", str(result_file)]
    print(f"running the {variant} variant ...", flush=True)
    subprocess.run(command, check=True)
    return json.loads(result_file.read_text())


# ---------------------------------------------------------------------------------- machine
def matmul_peak(device: torch.device, dtype: torch.dtype) -> dict:
    """Achieved FLOP/s of square matmuls repeated for about ``PEAK_SECONDS`` seconds."""
    size = 2048 if device.type == "cpu" else 8192
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty_like(a)

    def multiply(repeats: int) -> None:
        for _ in range(repeats):
            torch.matmul(a, b, out=out)

    multiply(1)
    _, twice = timed(lambda: multiply(2), device)
    repeats = max(1, math.ceil(PEAK_SECONDS / (twice / 2)))
    _, seconds = timed(lambda: multiply(repeats), device)
    return {
        "size": size,
        "dtype": str(dtype).removeprefix("torch."),
        "repeats": repeats,
        "seconds": seconds,
        "flops_per_s": 2 * size**3 * repeats / seconds,
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if found:
            return found.group(1).strip()
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict:
    """What the numbers were measured on."""
    import transformers

    description = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1min": os.getloadavg()[0],
    }
    if device.type == "cuda":
        description["gpu"] = torch.cuda.get_device_name(device)
        description["cuda"] = torch.version.cuda
    return description


def device_kind(device: torch.device) -> str:
    """``cpu``, or ``cuda-`` followed by the GPU's name in lower case with dashes."""
    if device.type == "cpu":
        return "cpu"
    name = re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    return f"cuda-{name}"


# ---------------------------------------------------------------------------------- summary
def variant_summary(result: dict, scored_tokens: int, peak: float) -> dict:
    """A variant's speed, padding, FLOP utilisation, memory and per-document numbers."""
    losses = result.pop("losses")
    flops_per_s = result["flops"] / result["elapsed_s"]
    fed, real = result["fed_tokens"], result["real_tokens"]
    return {
        **result,
        "tokens_per_s": scored_tokens / result["elapsed_s"],
        "padding_share": (fed - real) / fed,
        "flops_per_s": flops_per_s,
        "mfu": flops_per_s / peak,
        "loss_base": [base for base, _ in losses],
        "loss_ref": [ref for _, ref in losses],
        "scores": [(ref - base) / base for base, ref in losses],
    }


def comparison(naive: dict, engine: dict, rtol: float, dtype: torch.dtype) -> dict:
    """The engine's speed-up, its largest absolute differences from the naive numbers, and
    whether every score agrees within the tolerance of :mod:`ai_filters.numerics` for
    ``dtype`` (:func:`~ai_filters.numerics.score_tolerance`: from ``rtol`` per loss in fp32,
    the measured bound in bf16)."""

    def largest(key: str) -> float:
        return max(abs(a - b) for a, b in zip(naive[key], engine[key], strict=True))

    pairs = zip(naive["scores"], engine["scores"], strict=True)
    score_ratios = [abs(a - b) / score_tolerance(a, rtol, dtype) for a, b in pairs]
    return {
        "speedup": engine["tokens_per_s"] / naive["tokens_per_s"],
        "max_abs_diff_score": largest("scores"),
        "max_abs_diff_loss_base": largest("loss_base"),
        "max_abs_diff_loss_ref": largest("loss_ref"),
        "loss_rtol": rtol,
        "dtype": str(dtype).removeprefix("torch."),
        "max_score_diff_over_tolerance": max(score_ratios),
        "scores_agree": max(score_ratios) <= 1.0,
    }


def print_table(report: dict) -> None:
    """The human-readable summary of a report."""
    setup, host = report["settings"], report["machine"]
    memory_key = "peak_gpu_allocated_mib" if setup["device"] == "cuda" else "peak_rss_mib"
    lengths = setup["lengths"]
    print(
        f"\n{setup['model']} on {host.get('gpu', host['cpu'])}, {setup['dtype']}, "
        f"{host['torch_threads']} torch threads, {setup['num_docs']} docs, "
        f"{setup['scored_tokens']} tokens ({lengths['kind']}: median {lengths['median']}, "
        f"mean {lengths['mean']:.0f}, max {lengths['max']})"
    )
    print(
        f"{'variant':<8} {'tokens/s':>10} {'seconds':>9} {'padding':>8} {'peak MiB':>9} "
        f"{'GFLOP':>9} {'MFU':>7}"
    )
    for name, variant in report["variants"].items():
        print(
            f"{name:<8} {variant['tokens_per_s']:>10.1f} {variant['elapsed_s']:>9.2f} "
            f"{variant['padding_share']:>8.1%} {variant[memory_key]:>9.0f} "
            f"{variant['flops'] / 1e9:>9.1f} {variant['mfu']:>7.1%}"
        )
    peak = report["matmul_peak"]
    print(
        f"matmul peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({peak['dtype']}, {peak['size']}^2)"
    )
    for name, diff in report.get("comparisons", {}).items():
        verdict = "agree" if diff["scores_agree"] else "DISAGREE"
        rounds = ", ".join(f"{ratio:.2f}x" for ratio in diff["speedup_per_round"])
        print(
            f"{name}/naive: {diff['speedup']:.2f}x (rounds: {rounds}); scores {verdict} within "
            f"rounding: max |score diff| {diff['max_abs_diff_score']:.2e} = "
            f"{diff['max_score_diff_over_tolerance']:.2f} x its tolerance "
            f"({diff['dtype']}, loss rtol {diff['loss_rtol']:.1e}, see ai_filters/numerics.py)"
        )


def settings(args: argparse.Namespace, documents: list[dict], shared_layers: int) -> dict:
    """The benchmark's settings as recorded in the JSON."""
    domains = [document["domain"] for document in documents]
    lengths = [len(document["ids"]) for document in documents]
    return {
        "model": args.model,
        "device": args.device,
        "dtype": str(run_dtype(args)).removeprefix("torch."),
        "num_docs": args.num_docs,
        "lengths": {
            "kind": args.lengths,
            "doc_tokens": args.doc_tokens if args.lengths == "fixed" else None,
            "median_tokens": args.median_tokens if args.lengths == "web-mix" else None,
            "sigma": args.length_sigma if args.lengths == "web-mix" else None,
            "max_tokens": longest_document(args),
            "median": float(np.median(lengths)),
            "mean": float(np.mean(lengths)),
            "min": min(lengths),
            "max": max(lengths),
            "truncated": sum(length == longest_document(args) for length in lengths),
        },
        "scored_tokens": sum(lengths),
        "variants": args.variant_list,
        "batch_size": args.batch_size,
        "batch_tokens": args.batch_tokens,
        "pack_tokens": args.pack_tokens,
        "compile": args.compile,
        "rounds": args.rounds,
        "heads": [list(head) for head in benchmark_heads(args.model)],
        "engine_shared_layers": shared_layers,
        "documents_per_domain": {domain: domains.count(domain) for domain in DOMAINS},
    }


def benchmark(args: argparse.Namespace, argv: Sequence[str]) -> dict:
    """Run the variants in subprocesses, measure the matmul peak, and assemble the report."""
    documents = benchmark_documents(embedded_tokenizer(), document_lengths(args))
    variants = args.variant_list
    with tempfile.TemporaryDirectory(prefix="bench_scoring.") as work:
        docs_file = Path(work) / "documents.json"
        docs_file.write_text(json.dumps({"documents": [doc["ids"] for doc in documents]}))
        rounds: dict[str, list[dict]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for variant in variants:
                rounds[variant].append(spawn_variant(variant, argv, docs_file, Path(work)))
    results = {v: min(runs, key=lambda run: run["elapsed_s"]) for v, runs in rounds.items()}
    device = torch.device(args.device)
    peak = matmul_peak(device, run_dtype(args))
    engine_name = next(v for v in variants if v in ENGINE_VARIANTS)
    shared_layers = results[engine_name]["shared_layers"]
    scored = sum(len(document["ids"]) for document in documents)
    summaries = {v: variant_summary(r, scored, peak["flops_per_s"]) for v, r in results.items()}
    report = {
        "benchmark": "scoring",
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(device),
        "settings": settings(args, documents, shared_layers),
        "matmul_peak": peak,
        "variants": summaries,
        "rounds_elapsed_s": {v: [run["elapsed_s"] for run in runs] for v, runs in rounds.items()},
    }
    if "naive" in summaries:
        rtol = loss_rtol(model_config(args.model), longest_document(args), run_dtype(args))
        report["comparisons"] = {}
        for name in (v for v in variants if v in ENGINE_VARIANTS):
            diff = comparison(summaries["naive"], summaries[name], rtol, run_dtype(args))
            diff["speedup_per_round"] = [
                naive["elapsed_s"] / engine["elapsed_s"]
                for naive, engine in zip(rounds["naive"], rounds[name], strict=True)
            ]
            report["comparisons"][name] = diff
    return report


def write_report(report: dict, out_dir: Path, prefix: str = "scoring") -> Path:
    """Write ``report`` as ``<prefix>_<device kind>_<stamp>.json`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    kind = device_kind(torch.device(report["settings"]["device"]))
    path = out_dir / f"{prefix}_{kind}_{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.variant:
        run_variant(args)
        return
    report = benchmark(args, argv)
    print_table(report)
    print(f"wrote {write_report(report, args.out_dir)}")


if __name__ == "__main__":
    main()
