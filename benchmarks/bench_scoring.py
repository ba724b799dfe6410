"""Speed, memory and agreement of AttentionInfluence scoring: the engine against the naive way.

The naive way is what a user writes first: two model copies (the second with the retrieval
heads' query rows zeroed, which is exactly uniform masking), and two full Hugging Face forward
passes with ``labels=input_ids`` per document at batch size 1. The engine is
``ai_filters.scoring.ScoringEngine.score_token_ids``. Both score the same documents: real text
of the four demo domains, tokenized with the embedded tokenizer and cut into windows of exactly
``--doc-tokens`` tokens.

Each variant runs in its own subprocess (this script re-invoked with a hidden ``--variant``
flag), so its peak memory is its own. The parent then measures a matmul peak on the same device
and writes one JSON file under ``benchmarks/results/``. Run with ``--help`` for the options.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
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

import torch

from ai_filters.corpus import DOMAINS, SOURCES, local_corpus
from ai_filters.models import (
    DTYPES,
    LoadedModel,
    default_dtype,
    embedded_model_folder,
    load_model,
)
from ai_filters.numerics import loss_rtol, score_atol
from ai_filters.scoring import ScoringConfig, ScoringEngine

RESULTS_DIR = Path(__file__).resolve().parent / "results"
VARIANTS = ("naive", "engine")
EMBEDDED = "smollm2-135m"
RANDOM_LLAMA = "llama-1.7b-random"
MODELS = (EMBEDDED, RANDOM_LLAMA)
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
RANDOM_HEAD_LAYERS = range(12, 21)
HEAD_FRACTION = 0.05
PEAK_SECONDS = 2.0
MIB = 2**20


# ------------------------------------------------------------------------------- arguments
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; ``--variant``, ``--docs-file`` and ``--result-file`` are internal."""
    defaults = ScoringConfig()
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark AttentionInfluence scoring: the naive baseline (two model copies, two "
            "Hugging Face forward passes with labels per document, batch size 1) against "
            "ai_filters' ScoringEngine, on the same real documents. Reports tokens/s, the "
            "speed-up, the largest score and loss differences, each variant's peak memory "
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
        "hidden 2048), 39 heads (5%%) drawn from layers 12-20 with a fixed seed (GPU)",
    )
    parser.add_argument("--num-docs", type=int, default=32, help="documents to score")
    parser.add_argument("--doc-tokens", type=int, default=512, help="tokens of every document")
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
        "--engine-shared-layers",
        type=int,
        default=None,
        help="for the FLOP count: bottom layers the engine runs once for both passes; default "
        "ai_filters.scoring.shared_prefix_layers(heads), or 0 where that does not exist",
    )
    parser.add_argument(
        "--skip-naive", action="store_true", help="run only the engine (for big models)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the variants alternately this many times and keep each one's fastest round "
        "(on a noisy machine; every round's time and speed-up is in the JSON)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="pass compile=True to ScoringConfig (ignored, with a note, if it has no such field)",
    )
    parser.add_argument(
        "--out-dir", type=Path, default=RESULTS_DIR, help="folder for the JSON result"
    )
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--docs-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.num_docs < 1 or args.doc_tokens < 2:
        parser.error("--num-docs must be at least 1 and --doc-tokens at least 2")
    return args


def run_dtype(args: argparse.Namespace) -> torch.dtype:
    """The dtype asked for, or the device's default (fp32 on CPU, bf16 on GPU)."""
    return DTYPES[args.dtype] if args.dtype else default_dtype(torch.device(args.device))


# ------------------------------------------------------------------------------- documents
def embedded_tokenizer():
    """The embedded model's tokenizer (SmolLM2's 49,152-token vocabulary), without the model."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_model_folder())


def _domain_windows(texts: Sequence[str], tokenizer, doc_tokens: int) -> Iterator[list[int]]:
    """The texts of one domain, concatenated, cut into consecutive windows of ``doc_tokens``."""
    buffer: list[int] = []
    for text in texts:
        buffer.extend(tokenizer(text + "\n\n").input_ids)
        while len(buffer) >= doc_tokens:
            yield buffer[:doc_tokens]
            buffer = buffer[doc_tokens:]


def benchmark_documents(tokenizer, num_docs: int, doc_tokens: int) -> list[dict]:
    """``num_docs`` windows of exactly ``doc_tokens`` tokens, taken from the domains in turn.

    A domain whose text runs out drops out of the rotation; the others fill in.
    """
    per_domain = min(len(collect()) for collect, _ in SOURCES.values())
    corpus = local_corpus(docs_per_domain=per_domain, seed=SEED)
    windows = {
        domain: _domain_windows(
            [doc["text"] for doc in corpus if doc["metadata"]["domain"] == domain],
            tokenizer,
            doc_tokens,
        )
        for domain in DOMAINS
    }
    documents: list[dict] = []
    while windows and len(documents) < num_docs:
        for domain in list(windows):
            window = next(windows[domain], None)
            if window is None:
                del windows[domain]
            elif len(documents) < num_docs:
                documents.append({"domain": domain, "ids": window})
    if len(documents) < num_docs:
        raise SystemExit(
            f"the demo corpus holds only {len(documents)} windows of {doc_tokens} tokens; "
            "lower --num-docs or --doc-tokens"
        )
    return documents


# ---------------------------------------------------------------------------------- models
def benchmark_heads(model_name: str) -> list[tuple[int, int]]:
    """The heads to mask: the detected ones of the embedded model, or :func:`random_heads`."""
    return list(EMBEDDED_HEADS) if model_name == EMBEDDED else random_heads()


def random_heads() -> list[tuple[int, int]]:
    """As many heads as 5 % of the random Llama's, drawn from layers 12-20 with a fixed seed."""
    num_layers = RANDOM_LLAMA_SHAPE["num_hidden_layers"]
    num_heads = RANDOM_LLAMA_SHAPE["num_attention_heads"]
    count = math.ceil(HEAD_FRACTION * num_layers * num_heads)
    pool = [(layer, head) for layer in RANDOM_HEAD_LAYERS for head in range(num_heads)]
    return sorted(random.Random(SEED).sample(pool, count))


def random_llama(device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """SmolLM2-1.7B's shape with random weights (seeded), built directly on ``device``."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(**RANDOM_LLAMA_SHAPE, attn_implementation="sdpa")
    torch.manual_seed(SEED)
    with device:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.eval().requires_grad_(False)
    return LoadedModel(RANDOM_LLAMA, model, embedded_tokenizer(), device, dtype)


def model_config(model_name: str):
    """The configuration of the benchmarked model, without its weights."""
    from transformers import AutoConfig, LlamaConfig

    if model_name == EMBEDDED:
        return AutoConfig.from_pretrained(embedded_model_folder())
    return LlamaConfig(**RANDOM_LLAMA_SHAPE)


def benchmark_model(args: argparse.Namespace) -> tuple[LoadedModel, list[tuple[int, int]]]:
    """The model to score with and the heads to mask."""
    device, dtype = torch.device(args.device), run_dtype(args)
    if args.model == EMBEDDED:
        loaded = load_model(EMBEDDED, device=device, dtype=dtype)
    else:
        loaded = random_llama(device, dtype)
    return loaded, benchmark_heads(args.model)


def reference_copy(loaded: LoadedModel, heads: Sequence[tuple[int, int]]) -> torch.nn.Module:
    """A deep copy of the model whose masked heads have zero ``q_proj`` output rows."""
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


def attention_flops(layer: torch.nn.Module, doc_tokens: int) -> int:
    """FLOPs of causal QK^T and AV over one document: position i sees i + 1 keys."""
    query_width = layer.self_attn.q_proj.out_features
    return 2 * 2 * query_width * doc_tokens * (doc_tokens + 1) // 2


def scoring_flops(loaded: LoadedModel, doc_tokens: int, num_docs: int, shared_layers: int) -> int:
    """FLOPs of scoring: the bottom ``shared_layers`` layers once, the others and LM head twice."""
    per_document = 0
    for index, layer in enumerate(loaded.model.model.layers):
        passes = 1 if index < shared_layers else 2
        per_layer = layer_linear_flops(layer) * doc_tokens + attention_flops(layer, doc_tokens)
        per_document += passes * per_layer
    head = loaded.model.get_output_embeddings().weight.numel()
    per_document += 2 * 2 * head * doc_tokens
    return per_document * num_docs


def engine_shared_layers(
    heads: Sequence[tuple[int, int]], override: int | None
) -> tuple[int, str | None]:
    """Layers the engine runs once, and a note when this had to be assumed."""
    if override is not None:
        return override, None
    from ai_filters import scoring

    shared_prefix_layers = getattr(scoring, "shared_prefix_layers", None)
    if shared_prefix_layers is None:
        note = "ai_filters.scoring.shared_prefix_layers does not exist: engine FLOPs assume 0"
        return 0, note
    return int(shared_prefix_layers(heads)), None


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
    """The naive baseline: warm up on one document, then time all of them."""
    reference = reference_copy(loaded, heads)

    def score(docs: list[list[int]]) -> list[tuple[float, float]]:
        return naive_losses(loaded.model, reference, docs, loaded.device)

    _, warmup = timed(lambda: score(documents[:1]), loaded.device)
    losses, elapsed = timed(lambda: score(documents), loaded.device)
    flops = scoring_flops(loaded, len(documents[0]), len(documents), shared_layers=0)
    return {"losses": losses, "warmup_s": warmup, "elapsed_s": elapsed, "flops": flops}


def engine_config(args: argparse.Namespace) -> tuple[ScoringConfig, list[str]]:
    """The engine's configuration, and notes on options it does not support."""
    options = {
        "max_tokens": args.doc_tokens,
        "batch_size": args.batch_size,
        "batch_tokens": args.batch_tokens,
    }
    notes = []
    if args.compile:
        if "compile" in {field.name for field in dataclasses.fields(ScoringConfig)}:
            options["compile"] = True
        else:
            notes.append("ScoringConfig has no 'compile' field: --compile was ignored")
    return ScoringConfig(**options), notes


def run_engine(
    loaded: LoadedModel,
    heads: list[tuple[int, int]],
    documents: list[list[int]],
    args: argparse.Namespace,
) -> dict:
    """The engine: warm up on one batch of its shape, then time all documents."""
    config, notes = engine_config(args)
    engine = ScoringEngine(loaded, heads, config)
    budget = engine.config.batch_tokens  # resolved by the engine when not given
    rows = max(1, min(args.batch_size, budget // args.doc_tokens, len(documents)))
    _, warmup = timed(lambda: engine.score_token_ids(documents[:rows]), loaded.device)
    scores, elapsed = timed(lambda: engine.score_token_ids(documents), loaded.device)
    skipped = [score.skip_reason for score in scores if score.skip_reason is not None]
    if skipped:
        raise RuntimeError(f"the engine skipped {len(skipped)} documents: {skipped[:3]}")
    shared, note = engine_shared_layers(heads, args.engine_shared_layers)
    notes += [note] if note else []
    return {
        "losses": [(score.loss_base, score.loss_ref) for score in scores],
        "warmup_s": warmup,
        "elapsed_s": elapsed,
        "flops": scoring_flops(loaded, args.doc_tokens, len(documents), shared),
        "shared_layers": shared,
        "batch_tokens": budget,
        "notes": notes,
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
        result = run_engine(loaded, heads, documents, args)
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
    """A variant's speed, FLOP utilisation, memory and per-document numbers."""
    losses = result.pop("losses")
    flops_per_s = result["flops"] / result["elapsed_s"]
    return {
        **result,
        "tokens_per_s": scored_tokens / result["elapsed_s"],
        "flops_per_s": flops_per_s,
        "mfu": flops_per_s / peak,
        "loss_base": [base for base, _ in losses],
        "loss_ref": [ref for _, ref in losses],
        "scores": [(ref - base) / base for base, ref in losses],
    }


def comparison(naive: dict, engine: dict, rtol: float) -> dict:
    """The engine's speed-up, its largest absolute differences from the naive numbers, and
    whether every score agrees within the rounding tolerance of :mod:`ai_filters.numerics`
    (``rtol`` per loss, :func:`~ai_filters.numerics.score_atol` per score)."""

    def largest(key: str) -> float:
        return max(abs(a - b) for a, b in zip(naive[key], engine[key], strict=True))

    pairs = zip(naive["scores"], engine["scores"], strict=True)
    score_ratios = [abs(a - b) / score_atol(a, rtol) for a, b in pairs]
    return {
        "speedup": engine["tokens_per_s"] / naive["tokens_per_s"],
        "max_abs_diff_score": largest("scores"),
        "max_abs_diff_loss_base": largest("loss_base"),
        "max_abs_diff_loss_ref": largest("loss_ref"),
        "loss_rtol": rtol,
        "max_score_diff_over_tolerance": max(score_ratios),
        "scores_agree": max(score_ratios) <= 1.0,
    }


def print_table(report: dict) -> None:
    """The human-readable summary of a report."""
    setup, host = report["settings"], report["machine"]
    memory_key = "peak_gpu_allocated_mib" if setup["device"] == "cuda" else "peak_rss_mib"
    print(
        f"\n{setup['model']} on {host.get('gpu', host['cpu'])}, {setup['dtype']}, "
        f"{host['torch_threads']} torch threads, "
        f"{setup['num_docs']} docs x {setup['doc_tokens']} tokens"
    )
    print(f"{'variant':<8} {'tokens/s':>10} {'seconds':>9} {'peak MiB':>9} {'GFLOP':>9} {'MFU':>7}")
    for name, variant in report["variants"].items():
        print(
            f"{name:<8} {variant['tokens_per_s']:>10.1f} {variant['elapsed_s']:>9.2f} "
            f"{variant[memory_key]:>9.0f} {variant['flops'] / 1e9:>9.1f} {variant['mfu']:>7.1%}"
        )
    peak = report["matmul_peak"]
    print(
        f"matmul peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({peak['dtype']}, {peak['size']}^2)"
    )
    if "comparison" in report:
        diff = report["comparison"]
        print(
            f"speed-up engine/naive: {diff['speedup']:.2f}x; max |score diff| "
            f"{diff['max_abs_diff_score']:.2e}; max |loss diff| base "
            f"{diff['max_abs_diff_loss_base']:.2e}, ref {diff['max_abs_diff_loss_ref']:.2e}"
        )
        verdict = "agree" if diff["scores_agree"] else "DISAGREE"
        print(
            f"scores {verdict} within rounding: largest difference "
            f"{diff['max_score_diff_over_tolerance']:.2f} x its tolerance "
            f"(loss rtol {diff['loss_rtol']:.1e}, see ai_filters/numerics.py)"
        )
        rounds = ", ".join(f"{ratio:.2f}x" for ratio in diff["speedup_per_round"])
        print(f"speed-up of each round (naive then engine, alternately): {rounds}")
    for note in report["notes"]:
        print(f"note: {note}")


def settings(args: argparse.Namespace, documents: list[dict], shared_layers: int) -> dict:
    """The benchmark's settings as recorded in the JSON."""
    domains = [document["domain"] for document in documents]
    return {
        "model": args.model,
        "device": args.device,
        "dtype": str(run_dtype(args)).removeprefix("torch."),
        "num_docs": args.num_docs,
        "doc_tokens": args.doc_tokens,
        "scored_tokens": args.num_docs * args.doc_tokens,
        "batch_size": args.batch_size,
        "batch_tokens": args.batch_tokens,
        "compile": args.compile,
        "skip_naive": args.skip_naive,
        "rounds": args.rounds,
        "heads": [list(head) for head in benchmark_heads(args.model)],
        "engine_shared_layers": shared_layers,
        "documents_per_domain": {domain: domains.count(domain) for domain in DOMAINS},
    }


def benchmark(args: argparse.Namespace, argv: Sequence[str]) -> dict:
    """Run the variants in subprocesses, measure the matmul peak, and assemble the report."""
    documents = benchmark_documents(embedded_tokenizer(), args.num_docs, args.doc_tokens)
    variants = [v for v in VARIANTS if not (v == "naive" and args.skip_naive)]
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
    notes = results["engine"].pop("notes")
    shared_layers = results["engine"].pop("shared_layers")
    scored = args.num_docs * args.doc_tokens
    summaries = {v: variant_summary(r, scored, peak["flops_per_s"]) for v, r in results.items()}
    report = {
        "benchmark": "scoring",
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(device),
        "settings": settings(args, documents, shared_layers),
        "matmul_peak": peak,
        "variants": summaries,
        "notes": notes,
        "rounds_elapsed_s": {v: [run["elapsed_s"] for run in runs] for v, runs in rounds.items()},
    }
    if "naive" in summaries:
        rtol = loss_rtol(model_config(args.model), args.doc_tokens, run_dtype(args))
        report["comparison"] = comparison(summaries["naive"], summaries["engine"], rtol)
        report["comparison"]["speedup_per_round"] = [
            naive["elapsed_s"] / engine["elapsed_s"]
            for naive, engine in zip(rounds["naive"], rounds["engine"], strict=True)
        ]
    return report


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.variant:
        run_variant(args)
        return
    report = benchmark(args, argv)
    print_table(report)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out_dir / f"scoring_{device_kind(torch.device(args.device))}_{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
