"""What the benchmark scripts share: the machine description, the JSON result writer, the
subprocess runner, the command-line options, timing, memory, the matmul peak, the documents
they score, the heads they mask and the random-weight models they build.

A script under ``benchmarks/`` imports the ``ai_filters`` package, third-party libraries and
the shared benchmark modules only: this one, ``scoring_variants.py`` (the scoring variants that
``bench_scoring.py`` times and ``gpu_check.py`` runs through it) and ``gpu_image.py`` (the GPU
machine's image against this project's requirements). A shared module is imported, never run;
no script imports another script.

Random-weight models: ``benchmarks/model_shapes/<name>.json`` are Hugging Face configs in the
shapes of SmolLM2-135M, 360M and 1.7B (and a toy shape for CPU smoke runs);
:func:`build_random_model` writes a loadable model folder (seeded random weights, the given
tokenizer's files), so nothing is downloaded and no weights travel to a GPU machine.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import importlib.metadata
import itertools
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ai_filters.demo.corpus import DOMAINS, SOURCES, local_corpus
from ai_filters.engine.models import DTYPES

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
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


def machine(
    device: torch.device | str,
    packages: Sequence[str] = (),
    load_start: tuple[float, float, float] | None = None,
) -> dict:
    """What the numbers were measured on: CPU, threads, versions (torch, transformers and
    ``packages``), the 1-minute load average now and, given ``load_start`` (``os.getloadavg()``
    when the run began), the load averages at the start and the end; the GPU on CUDA."""
    import transformers

    device = torch.device(device)
    description = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        **{name: importlib.metadata.version(name) for name in packages},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1min": os.getloadavg()[0],
    }
    if load_start is not None:
        description |= {"load_average_start": load_start, "load_average_end": os.getloadavg()}
    if device.type == "cuda":
        description["gpu"] = torch.cuda.get_device_name(device)
        description["cuda"] = torch.version.cuda
    return description


def write_heads_file(loaded, heads: Sequence[tuple[int, int]], path: Path) -> Path:
    """A heads file of the loaded model ``loaded`` selecting ``heads`` (no detection run: the
    scores are left at 0); returns ``path``."""
    from ai_filters.engine.heads_file import RetrievalHeads

    RetrievalHeads(
        model=loaded.spec,
        model_fingerprint=loaded.fingerprint(),
        num_layers=loaded.num_layers,
        num_heads=loaded.num_heads,
        num_kv_heads=loaded.num_kv_heads,
        scores=[[0.0] * loaded.num_heads for _ in range(loaded.num_layers)],
        selected=[list(head) for head in heads],
    ).save(path)
    return path


def device_kind(device: torch.device) -> str:
    """``cpu``, or ``cuda-`` followed by the GPU's name in lower case with dashes."""
    if device.type == "cpu":
        return "cpu"
    name = re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    return f"cuda-{name}"


# ------------------------------------------------------------------------------ the results
def report_head(benchmark: str, device: torch.device | str, **machine_options) -> dict:
    """The first keys of every result: the benchmark's name, when, and :func:`machine`."""
    return {
        "benchmark": benchmark,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(device, **machine_options),
    }


def result_path(out_dir: Path, prefix: str, device: str, suffix: str = ".json") -> Path:
    """``out_dir/<prefix>_<device kind>_<YYYYmmdd-HHMMSS><suffix>`` (``out_dir`` made)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return out_dir / f"{prefix}_{device_kind(torch.device(device))}_{stamp}{suffix}"


def write_json(report: dict, path: Path) -> Path:
    """Write ``report`` as indented JSON to ``path`` (its folder made); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    return path


def write_report(report: dict, out_dir: Path, prefix: str, device: str) -> Path:
    """Write ``report`` as ``<prefix>_<device kind>_<stamp>.json`` in ``out_dir``."""
    return write_json(report, result_path(out_dir, prefix, device))


# ------------------------------------------------------------------------------ subprocesses
def run_python(
    arguments: Sequence[str], cwd: Path | None = None, capture: bool = False, label: str = ""
) -> str:
    """Run this interpreter on ``arguments`` (a script and its arguments, ``-m MODULE ...`` or
    ``-c CODE ...``) in a fresh process; with ``label``, print ``[label] arguments`` first.
    Returns the captured standard output (``capture``; else ""). A non-zero exit raises
    ``RuntimeError`` naming the command (and, captured, the end of its standard error)."""
    if label:
        print(f"[{label}] {' '.join(arguments)}", flush=True)
    result = subprocess.run(
        [sys.executable, *arguments], cwd=cwd, capture_output=capture, text=True, check=False
    )
    if result.returncode != 0:
        shown = " ".join(arguments)[:200]
        tail = f":\n{result.stderr[-3000:]}" if capture else ""
        raise RuntimeError(f"python {shown} exited with status {result.returncode}{tail}")
    return result.stdout if capture else ""


def add_variant_options(parser: argparse.ArgumentParser, variants: Sequence[str]) -> None:
    """The hidden options with which a script re-invokes itself for one variant:
    ``--variant``, ``--docs-file`` (its input) and ``--result-file`` (its JSON result)."""
    parser.add_argument("--variant", choices=tuple(variants), help=argparse.SUPPRESS)
    parser.add_argument("--docs-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)


def variant_in_subprocess(
    script: str, argv: Sequence[str], variant: str, docs_file: Path, work: Path
) -> dict:
    """Run ``script`` with its command line ``argv`` and :func:`add_variant_options` for
    ``variant`` in a fresh interpreter, so its peak memory is its own; its JSON result."""
    result_file = work / f"{variant}.json"
    hidden = [
        "--variant",
        variant,
        "--docs-file",
        str(docs_file),
        "--result-file",
        str(result_file),
    ]
    print(f"running the {variant} variant ...", flush=True)
    run_python([str(Path(script).resolve()), *argv, *hidden])
    return json.loads(result_file.read_text())


# ---------------------------------------------------------------------------------- options
def base_parser(description: str, raw: bool = False) -> argparse.ArgumentParser:
    """A parser that shows defaults (``raw``: keeps the description's line breaks)."""
    formatter = (
        argparse.RawDescriptionHelpFormatter if raw else argparse.ArgumentDefaultsHelpFormatter
    )
    return argparse.ArgumentParser(description=description, formatter_class=formatter)


def add_model_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--model", default=EMBEDDED, help=help_text)


def add_texts_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--texts",
        type=Path,
        default=None,
        help="documents to cut the benchmark's documents from (.jsonl.gz of the four demo "
        "domains, as make gpu-bundle writes); default: the local corpus of this machine",
    )


def model_documents_parser(description: str, num_docs: int) -> argparse.ArgumentParser:
    """The options of the benchmarks that score token documents cut from the demo domains with
    a model: device, dtype, model, texts, how many documents, the web-mix lengths (median,
    longest) and the JSON's folder. :func:`checked` parses them."""
    parser = base_parser(description)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run")
    parser.add_argument(
        "--dtype",
        choices=tuple(DTYPES),
        default=None,
        help="model dtype; default float32 on cpu, bfloat16 on cuda (also the matmul peak's)",
    )
    add_model_option(
        parser,
        f"{EMBEDDED} (the embedded SmolLM2-135M) or a model folder, for example random "
        "weights in a SmolLM2 shape written by benchmarks/random_model.py",
    )
    add_texts_option(parser)
    parser.add_argument("--num-docs", type=int, default=num_docs, help="documents to score")
    parser.add_argument(
        "--max-tokens", type=int, default=2048, help="web-mix: the longest document"
    )
    parser.add_argument("--median-tokens", type=int, default=600, help="web-mix: the median")
    parser.add_argument(
        "--out-dir", type=Path, default=RESULTS_DIR, help="folder for the JSON result"
    )
    return parser


def demo_documents_parser(
    description: str, docs_per_domain: int, max_tokens: int
) -> argparse.ArgumentParser:
    """The options shared by the benchmarks that score demo-corpus documents: the device, how
    many documents per domain, how the corpus is cut, tokens scored each, the JSON's folder."""
    parser = base_parser(description)
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


def checked(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser``'s arguments; ``--device cuda`` without a CUDA device is a usage error."""
    args = parser.parse_args(argv)
    if getattr(args, "device", None) == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return args


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


def peak_memory(device: torch.device | str) -> dict:
    """This process's peak resident memory, and on a GPU its peak allocated memory (MiB)."""
    device = torch.device(device)
    memory = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        memory["peak_gpu_allocated_mib"] = torch.cuda.max_memory_allocated(device) / MIB
    return memory


# -------------------------------------------------------------------------------- documents
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


def model_config(spec: str):
    """The configuration of model ``spec`` (a name or folder), without its weights."""
    from transformers import AutoConfig

    from ai_filters.engine.models import resolve_model_path

    return AutoConfig.from_pretrained(resolve_model_path(spec))


def heads_of(model: str) -> list[tuple[int, int]]:
    """The heads a benchmark masks: the embedded model's detected ones, or
    :func:`random_heads` of any other model."""
    if model == EMBEDDED:
        return list(EMBEDDED_HEADS)
    return random_heads(model_config(model))
