"""The GPU check behind ``benchmarks/gpu_check.sh``: every GPU figure the project needs, in one
short run with nothing to download, merged into one JSON under ``benchmarks/results/``.

Steps (each one of the benchmark scripts beside this one, run as a subprocess):

a. ``bench_scoring.py``: naive vs engine vs packed engine on the embedded model, on a web-like
   length mix (log-normal, median 600 tokens, truncated at 2,048): tokens/s, padding, agreement
   (in bf16 within the bound measured on the CPU, ``ai_filters.numerics.score_tolerance``).
b. ``bench_scoring.py``: the engine (one document per row, and packed) on random weights in
   SmolLM2-1.7B's shape in bf16: tokens/s and model FLOP utilisation against a bf16 matmul peak
   measured in the same run.
c. ``bench_bf16.py``: bf16 against fp32 scores on the demo corpus (Spearman, top-20 % Jaccard,
   every score within ``ai_filters.numerics.BF16_SCORE_DIFF`` of its fp32 score).
d. ``bench_tokenization.py``: the share of the datatrove scorer's time spent tokenizing, and
   what tokenizing the next batch in the background saves.

Targets (reported, never asserted: the run always writes its figures): MFU >= 40 % at 1.7B;
engine >= 10x the naive tokens/s on the embedded model; bf16 Spearman >= 0.99 and top-20 %
Jaccard >= 0.9. ``--cpu-smoke`` runs the same steps on the CPU at toy sizes (a 4-layer random
Llama for step b) in about a minute, to keep the script working until a GPU is lent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
TARGETS = {
    "mfu_1p7b": 0.40,
    "embedded_speedup": 10.0,
    "bf16_spearman": 0.99,
    "bf16_top20_jaccard": 0.9,
}
# the arguments of each step on a GPU (within about 8 minutes on one H100-class card) and in
# the CPU smoke run (seconds each)
STEPS = {
    "embedded": (
        "bench_scoring.py",
        "--model smollm2-135m --lengths web-mix --max-tokens 2048 --num-docs 256 "
        "--variants naive,engine,packed",
        "--model smollm2-135m --lengths web-mix --max-tokens 48 --median-tokens 24 "
        "--num-docs 3 --variants naive,engine,packed",
    ),
    "llama_1p7b": (
        "bench_scoring.py",
        "--model llama-1.7b-random --lengths fixed --doc-tokens 2048 --num-docs 128 "
        "--batch-tokens 65536 --variants engine,packed",
        "--model llama-tiny-random --lengths fixed --doc-tokens 32 --num-docs 3 "
        "--variants engine,packed",
    ),
    "bf16": (
        "bench_bf16.py",
        "--docs-per-domain 100 --max-tokens 512",
        "--docs-per-domain 1 --max-tokens 24",
    ),
    "tokenization": (
        "bench_tokenization.py",
        "--docs-per-domain 100 --max-tokens 512 --batch-size 64 --rounds 2",
        "--docs-per-domain 1 --max-tokens 24 --batch-size 2 --rounds 1",
    ),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="toy sizes on the CPU (CI; about a minute)"
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    args = parser.parse_args(argv)
    if not args.cpu_smoke:
        import torch

        if not torch.cuda.is_available():
            parser.error("no CUDA device is visible; on a machine without a GPU use --cpu-smoke")
    return args


def run_step(name: str, args: argparse.Namespace, work: Path) -> tuple[dict, float]:
    """Run one step's script into ``work/name`` and return its JSON report and wall seconds."""
    script, gpu_arguments, smoke_arguments = STEPS[name]
    device = "cpu" if args.cpu_smoke else "cuda"
    arguments = (smoke_arguments if args.cpu_smoke else gpu_arguments).split()
    out = work / name
    command = [sys.executable, str(HERE / script), "--device", device, *arguments]
    command += ["--out-dir", str(out)]
    print(f"[gpu_check] {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - start
    (report_file,) = out.glob("*.json")
    return json.loads(report_file.read_text()), seconds


def best_engine(report: dict) -> tuple[str, dict]:
    """The faster of the engine variants of a scoring report."""
    engines = {name: report["variants"][name] for name in ("engine", "packed")}
    name = max(engines, key=lambda key: engines[key]["tokens_per_s"])
    return name, engines[name]


def summary(reports: dict[str, dict]) -> dict:
    """The figures the README quotes, and each target with whether it was met."""
    embedded, llama = reports["embedded"], reports["llama_1p7b"]
    bf16, tokens = reports["bf16"]["agreement"], reports["tokenization"]
    llama_name, llama_best = best_engine(llama)
    embedded_name, _ = best_engine(embedded)
    comparisons = embedded["comparisons"]
    figures = {
        "embedded_speedup": comparisons[embedded_name]["speedup"],
        "embedded_speedup_by_variant": {k: v["speedup"] for k, v in comparisons.items()},
        "embedded_scores_agree": all(v["scores_agree"] for v in comparisons.values()),
        "embedded_padding_share": {
            name: variant["padding_share"] for name, variant in embedded["variants"].items()
        },
        "mfu_1p7b": llama_best["mfu"],
        "tokens_per_s_1p7b": llama_best["tokens_per_s"],
        "variant_1p7b": llama_name,
        "bf16_spearman": bf16["spearman"],
        "bf16_top20_jaccard": bf16["top20_jaccard"],
        "bf16_scores_within_bound": bf16["scores_within_bound"],
        "tokenize_share_in_block": tokens["block"]["tokenize_share"],
        "background_tokenizing_saves": tokens["overlap"]["saved_share"],
    }
    figures["targets"] = {
        key: {"target": target, "measured": figures[key], "met": figures[key] >= target}
        for key, target in TARGETS.items()
    }
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    reports: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check.") as folder:
        for name in STEPS:
            reports[name], seconds[name] = run_step(name, args, Path(folder))
    kind = "cpu-smoke" if args.cpu_smoke else reports["embedded"]["machine"].get("gpu", "cuda")
    result = {
        "benchmark": "gpu_check",
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "mode": "cpu-smoke" if args.cpu_smoke else "gpu",
        "machine": reports["embedded"]["machine"],
        "step_seconds": seconds,
        "summary": summary(reports),
        "steps": reports,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    label = "".join(c if c.isalnum() else "-" for c in kind.lower()).strip("-")
    path = args.out_dir / f"gpu_check_{label}_{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=1))
    print(f"[gpu_check] {sum(seconds.values()):.0f} s in all; wrote {path}")


if __name__ == "__main__":
    main()
