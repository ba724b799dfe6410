"""What the benchmark scripts share: the machine description, timing, memory, the matmul peak,
the JSON result writer, the documents they score and the random-weight models they build.

Random-weight models: ``benchmarks/model_shapes/<name>.json`` are Hugging Face configs in the
shapes of SmolLM2-135M, 360M and 1.7B (and a toy shape for CPU smoke runs);
:func:`build_random_model` writes a loadable model folder (seeded random weights, the given
tokenizer's files), so nothing is downloaded and no weights travel to a GPU machine.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import gzip
import itertools
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ai_filters.demo.corpus import DOMAINS, SOURCES, local_corpus
from ai_filters.engine.models import LoadedModel
from ai_filters.engine.numerics import score_tolerance

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
SHAPES_DIR = HERE / "model_shapes"
EMBEDDED = "smollm2-135m"
# the retrieval heads our detector finds in the embedded SmolLM2-135M
EMBEDDED_HEADS = [
    (18, 6), (17, 3), (20, 6), (18, 7), (23, 2), (17, 4), (20, 5),
    (23, 7), (21, 8), (22, 7), (23, 8), (21, 5), (24, 2), (23, 1),
]  # fmt: skip
HEAD_FRACTION = 0.05
SEED = 0
PEAK_SECONDS = 2.0
MIB = 2**20
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


# ---------------------------------------------------------------------------------- machine
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


def write_report(report: dict, out_dir: Path, prefix: str, device: str) -> Path:
    """Write ``report`` as ``<prefix>_<device kind>_<stamp>.json`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"{prefix}_{device_kind(torch.device(device))}_{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------- time and memory
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


def peak_memory(device: torch.device) -> dict:
    """This process's peak resident memory, and on a GPU its peak allocated memory (MiB)."""
    memory = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        memory["peak_gpu_allocated_mib"] = torch.cuda.max_memory_allocated(device) / MIB
    return memory


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


# -------------------------------------------------------------------------------- documents
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


def corpus_texts(texts_file: Path | None = None) -> list[dict]:
    """Documents of the four demo domains: ``texts_file`` (JSON lines, gzip, as
    :func:`write_corpus_texts` writes them), or every text the local corpus finds here."""
    if texts_file is not None:
        with gzip.open(texts_file, "rt", encoding="utf-8") as lines:
            return [json.loads(line) for line in lines]
    per_domain = min(len(collect()) for collect, _ in SOURCES.values())
    return local_corpus(docs_per_domain=per_domain, seed=SEED)


def write_corpus_texts(path: Path) -> int:
    """Write :func:`corpus_texts` of this machine to ``path``; returns the document count."""
    documents = corpus_texts()
    with gzip.open(path, "wt", encoding="utf-8") as lines:
        for document in documents:
            lines.write(json.dumps(document, ensure_ascii=False) + "\n")
    return len(documents)


def document_lengths(
    count: int, lengths: str, doc_tokens: int, median: int, sigma: float, longest: int
) -> list[int]:
    """Every document's length: ``doc_tokens`` (``lengths="fixed"``), or log-normal draws
    (``"web-mix"``, seeded) around ``median`` truncated at ``longest``, at least 2 tokens."""
    if lengths == "fixed":
        return [doc_tokens] * count
    draws = np.random.default_rng(SEED).lognormal(math.log(median), sigma, count)
    return [int(min(max(round(length), 2), longest)) for length in draws]


def _domain_stream(texts: Sequence[str], tokenizer) -> Iterator[int]:
    """The tokens of one domain's texts, one after another (a blank line between texts)."""
    for text in texts:
        yield from tokenizer(text + "\n\n").input_ids


def benchmark_documents(tokenizer, lengths: Sequence[int], corpus: list[dict]) -> list[dict]:
    """One document per length: the next that many tokens of a domain of ``corpus``, the
    domains in turn. A domain whose text runs out drops out of the rotation; the others fill in.
    """
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
            f"the corpus holds only {len(documents)} documents of these lengths; "
            "lower --num-docs or the lengths"
        )
    return documents


# ------------------------------------------------------------------------ random-weight models
def shape_names() -> list[str]:
    """The shapes under ``benchmarks/model_shapes/``."""
    return sorted(path.stem for path in SHAPES_DIR.glob("*.json"))


def shape_config(name: str):
    """The Hugging Face config of shape ``name`` (SDPA attention)."""
    from transformers import AutoConfig

    path = SHAPES_DIR / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"unknown model shape '{name}'; choose one of {', '.join(shape_names())}")
    values = json.loads(path.read_text())
    model_type = values.pop("model_type")
    return AutoConfig.for_model(model_type, **values, attn_implementation="sdpa")


def build_random_model(
    shape: str, tokenizer_dir: Path, out: Path, dtype: torch.dtype, device: torch.device
) -> Path:
    """Write a model folder of ``shape`` with seeded random weights in ``dtype`` (built on
    ``device``) and the tokenizer files of ``tokenizer_dir``; returns ``out``."""
    from transformers import AutoModelForCausalLM

    config = shape_config(shape)
    torch.manual_seed(SEED)
    with device:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, out / name)
    del model
    return out


def random_heads(config) -> list[tuple[int, int]]:
    """5 % of the heads (at least one), drawn from the middle layers (the second half's first
    three quarters, where retrieval heads sit) with a fixed seed."""
    num_layers, num_heads = config.num_hidden_layers, config.num_attention_heads
    count = max(1, math.ceil(HEAD_FRACTION * num_layers * num_heads))
    layers = range(num_layers // 2, max(num_layers // 2 + 1, num_layers * 7 // 8))
    pool = [(layer, head) for layer in layers for head in range(num_heads)]
    return sorted(random.Random(SEED).sample(pool, count))


# --------------------------------------------------------------------- naive baseline, FLOPs
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


def comparison(baseline: dict, other: dict, rtol: float, dtype: torch.dtype) -> dict:
    """``other``'s speed-up over ``baseline``, the largest absolute differences of their
    numbers, and whether every score agrees within the tolerance of
    :mod:`ai_filters.engine.numerics`
    for ``dtype`` (:func:`~ai_filters.engine.numerics.score_tolerance`: from ``rtol`` per loss
    in fp32,
    the bound measured on the CPU in bf16)."""

    def largest(key: str) -> float:
        return max(abs(a - b) for a, b in zip(baseline[key], other[key], strict=True))

    pairs = zip(baseline["scores"], other["scores"], strict=True)
    score_ratios = [abs(a - b) / score_tolerance(a, rtol, dtype) for a, b in pairs]
    return {
        "speedup": other["tokens_per_s"] / baseline["tokens_per_s"],
        "max_abs_diff_score": largest("scores"),
        "max_abs_diff_loss_base": largest("loss_base"),
        "max_abs_diff_loss_ref": largest("loss_ref"),
        "loss_rtol": rtol,
        "dtype": str(dtype).removeprefix("torch."),
        "max_score_diff_over_tolerance": max(score_ratios),
        "scores_agree": max(score_ratios) <= 1.0,
    }
