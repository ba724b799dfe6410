"""The GPU check behind ``benchmarks/gpu_check.sh``: the whole scoring path on one GPU, in one
short run that reads nothing but the working tree and ``gpu_bundle/``, into one JSON.

Models: random weights in the shapes of SmolLM2-135M, 360M and 1.7B (``benchmarks/
model_shapes/``), built on the machine with the bundle's tokenizer (``random_model.py``): what
is measured is speed, memory and numerics, never what real weights select. Steps, each a
subprocess, each recorded with ``ok`` and its figures even when another fails:

- ``scoring``: naive vs engine (one document per row) vs packed engine (flex attention on CUDA,
  and SDPA with a block-diagonal mask), 135M shape, on a web length mix (log-normal, median 600
  tokens, up to 2,048): tokens/s, padding, agreement;
- ``mfu``: the packed engine on the 1.7B shape in bf16, model FLOP utilisation against a bf16
  matmul peak measured in the same run;
- ``pipeline``: ``ai-filters detect-heads`` (short probes) and ``pipelines/smollm_select.py`` on
  the bundle's demo corpus with the 1.7B shape, packing on: the four stages, the conservation of
  documents, and the share of the scoring task spent outside the model;
- ``memory``: peak GPU memory against the batch size in tokens (1.7B shape);
- ``compile``: the packed engine with and without ``--compile`` (360M shape);
- ``bf16``: bf16 against fp32 scores (135M shape; random weights: the numerics only, the
  agreement a selection sees is ``bench_bf16.py`` on the embedded model on a CPU).

``--cpu-smoke`` runs the same steps on the CPU with a toy shape and toy sizes (CI). Targets
(reported, never asserted): see :data:`TARGETS`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from common import HERE, ROOT, base_parser, report_head, run_python

TARGETS = {  # figure -> least value wanted on one H100
    "mfu_1p7b_packed": 0.45,
    "packed_over_engine": 1.3,
}
TARGET_MOST = {"outside_model_share": 0.10, "total_minutes": 6.0}
SHAPES = {  # model role -> shape on a GPU (in the CPU smoke every role uses the toy shape)
    "small": "smollm2-135m",
    "medium": "smollm2-360m",
    "large": "smollm2-1.7b",
}
GPU_SIZES = {
    "scoring": "--lengths web-mix --max-tokens 2048 --num-docs 256",
    "mfu": "--lengths web-mix --max-tokens 2048 --num-docs 128 --batch-tokens 65536",
    "probes": "--num-probes 16 --max-tokens 1024",
    "select": "--max-tokens 2048 --docs-per-batch 256",
    "memory": "--num-docs 64 --batch-tokens 8192,16384,32768,65536",
    "compile": "--lengths web-mix --max-tokens 1024 --num-docs 128",
    "bf16": "--docs-per-domain 32 --max-tokens 512",
}
BENCHMARKS = {  # step -> the benchmark script it runs, its model role, its options but sizes
    "scoring": ("bench_scoring.py", "small", "--variants naive,engine,packed,packed_sdpa"),
    "mfu": ("bench_scoring.py", "large", "--variants packed"),
    "memory": ("bench_memory.py", "large", ""),
    "compile": ("bench_scoring.py", "medium", "--variants packed,compiled"),
    "bf16": ("bench_bf16.py", "small", ""),
}
SMOKE_SIZES = {
    "scoring": "--lengths web-mix --max-tokens 48 --median-tokens 24 --num-docs 4",
    "mfu": "--lengths web-mix --max-tokens 48 --median-tokens 24 --num-docs 4",
    "probes": "--num-probes 2 --max-tokens 512",
    "select": "--max-tokens 32 --docs-per-batch 16",
    "memory": "--num-docs 4 --max-tokens 48 --median-tokens 24 --batch-tokens 64,128",
    "compile": "--lengths web-mix --max-tokens 32 --median-tokens 16 --num-docs 3",
    "bf16": "--docs-per-domain 1 --max-tokens 24",
}


class Run:
    """One check: where things are, how big, and the command runner."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.smoke = args.cpu_smoke
        self.device = "cpu" if self.smoke else "cuda"
        self.bundle = args.bundle.resolve()
        self.texts = self.bundle / "texts.jsonl.gz"
        self.work = work
        self.sizes = SMOKE_SIZES if self.smoke else GPU_SIZES
        self.models: dict[str, Path] = {}

    def model(self, role: str) -> Path:
        """The model folder of ``role``, built on first use."""
        shape = "toy" if self.smoke else SHAPES[role]
        if shape not in self.models:
            dtype = "float32" if self.smoke else "bfloat16"
            folder = self.work / "models" / shape
            self.python(
                "random_model.py",
                f"--shape {shape} --dtype {dtype} --device {self.device}".split(),
                "--tokenizer",
                str(self.bundle / "tokenizer"),
                "--out",
                str(folder),
            )
            self.models[shape] = folder
        return self.models[shape]

    def python(self, script: str, *arguments: str | Sequence[str]) -> None:
        """Run ``script`` (under benchmarks/, or a module with ``-m``) with ``arguments``."""
        flat = [item for part in arguments for item in ([part] if isinstance(part, str) else part)]
        target = [str(HERE / script)] if script.endswith(".py") else ["-m", script]
        run_python([*target, *flat], cwd=ROOT, label="gpu_check")

    def size(self, step: str) -> list[str]:
        return self.sizes[step].split()

    def report(self, step: str) -> dict:
        """Run the benchmark script of ``step`` (:data:`BENCHMARKS`) at the step's sizes on the
        model of its role and the bundle's texts, into its own folder; its JSON report."""
        script, role, options = BENCHMARKS[step]
        out = self.work / step
        data = ["--model", str(self.model(role)), "--texts", str(self.texts)]
        arguments = [*options.split(), *self.size(step), "--out-dir", str(out)]
        self.python(script, "--device", self.device, data, arguments)
        (path,) = out.glob("*.json")
        return json.loads(path.read_text())


# ------------------------------------------------------------------------------------ steps
def step_scoring(run: Run) -> dict:
    report = run.report("scoring")
    variants, comparisons = report["variants"], report["comparisons"]
    figures = {
        "tokens_per_s": {name: v["tokens_per_s"] for name, v in variants.items()},
        "attention_kernel": {name: v.get("attention_kernel") for name, v in variants.items()},
        "packed_flex_over_sdpa": variants["packed"]["tokens_per_s"]
        / variants["packed_sdpa"]["tokens_per_s"],
        "padding_share": {name: v["padding_share"] for name, v in variants.items()},
        "speedup_over_naive": {name: c["speedup"] for name, c in comparisons.items()},
        "packed_over_engine": variants["packed"]["tokens_per_s"]
        / variants["engine"]["tokens_per_s"],
        "scores_agree": all(c["scores_agree"] for c in comparisons.values()),
        "max_score_diff_over_tolerance": {
            name: c["max_score_diff_over_tolerance"] for name, c in comparisons.items()
        },
        "lengths": report["settings"]["lengths"],
    }
    return {"ok": figures["scores_agree"], **figures}


def step_mfu(run: Run) -> dict:
    report = run.report("mfu")
    packed = report["variants"]["packed"]
    return {
        "ok": packed["mfu"] > 0,
        "mfu_1p7b_packed": packed["mfu"],
        "tokens_per_s": packed["tokens_per_s"],
        "padding_share": packed["padding_share"],
        "matmul_peak_tflops": report["matmul_peak"]["flops_per_s"] / 1e12,
        "dtype": report["settings"]["dtype"],
    }


def step_pipeline(run: Run) -> dict:
    model, out = run.model("large"), run.work / "pipeline"
    heads = out / "heads.json"
    dtype = "float32" if run.smoke else "bfloat16"
    run.python(
        "ai_filters.cli",
        ["detect-heads", "--model", str(model), "--device", run.device, "--dtype", dtype],
        run.size("probes"),
        ["--sentences", str(run.texts), "--out", str(heads)],
    )
    domains = out / "domains.yaml"
    corpus = run.bundle / "corpus"
    specs = {
        path.name: {"reader": "jsonl", "path": str(path)}
        for path in sorted(corpus.iterdir())
        if path.is_dir()
    }
    domains.write_text(json.dumps(specs))  # JSON is valid YAML
    selection = out / "selection"
    started = time.perf_counter()
    run.python(
        str(ROOT / "pipelines" / "smollm_select.py"),
        ["--domains", str(domains), "--heads", str(heads), "--model", str(model)],
        ["--out", str(selection), "--device", run.device, "--dtype", dtype, "--packing"],
        ["--tasks", "1"],
        run.size("select"),
    )
    wall = time.perf_counter() - started
    return pipeline_figures(selection, wall)


def pipeline_figures(selection: Path, wall: float) -> dict:
    """Counts, conservation and the scoring task's time outside the model, from the run's
    report and the score stage's stats."""
    report = json.loads((selection / "report.json").read_text())
    domains = report["domains"]
    conserved = all(
        d["read_equals_scored_plus_skipped"] and d["scored_equals_selected_plus_rejected"]
        for d in domains.values()
    )
    totals = {
        key: sum(d[key] for d in domains.values())
        for key in ("read", "scored", "skipped", "selected", "rejected")
    }
    stages = sorted(path.name for path in (selection / "logs").iterdir() if path.is_dir())
    steps = json.loads((selection / "logs" / "score" / "stats.json").read_text())
    scorer = next(step for step in steps if "SCORER" in step["name"])["stats"]
    model_seconds = scorer["model_seconds"]["total"]
    task_seconds = scorer["task_seconds"]["total"]
    return {
        "ok": conserved and totals["scored"] > 0 and len(stages) == 4,
        "stages": stages,
        **totals,
        "conserved": conserved,
        "model_seconds": model_seconds,
        "task_seconds": task_seconds,
        "outside_model_share": 1 - model_seconds / task_seconds,
        "pipeline_wall_s": wall,
    }


def step_memory(run: Run) -> dict:
    report = run.report("memory")
    key = "peak_rss_mib" if run.smoke else "peak_gpu_allocated_mib"
    by_tokens = report["by_batch_tokens"]
    return {
        "ok": all(entry["skipped"] == 0 for entry in by_tokens.values()),
        "memory_kind": key,
        "peak_mib_by_batch_tokens": {tokens: entry[key] for tokens, entry in by_tokens.items()},
        "tokens_per_s_by_batch_tokens": {
            tokens: entry["tokens_per_s"] for tokens, entry in by_tokens.items()
        },
    }


def step_compile(run: Run) -> dict:
    report = run.report("compile")
    variants = report["variants"]
    (comparison,) = report["comparisons"].values()
    return {
        "ok": comparison["scores_agree"],
        "tokens_per_s": {name: v["tokens_per_s"] for name, v in variants.items()},
        "compiled_over_eager": comparison["speedup"],
        "compile_warmup_s": variants["compiled"]["warmup_s"],
        "scores_agree": comparison["scores_agree"],
    }


def step_bf16(run: Run) -> dict:
    report = run.report("bf16")
    agreement = report["agreement"]
    return {
        "ok": agreement["documents_scored"] > 0,
        "weights": "random (numerics only)",
        "spearman": agreement["spearman"],
        "top20_jaccard": agreement["top20_jaccard"],
        "max_abs_diff_score": agreement["max_abs_diff_score"],
        "scores_within_bound": agreement["scores_within_bound"],
        "score_bound": agreement["score_bound"],
        "max_rel_diff_loss_base": agreement["max_rel_diff_loss_base"],
    }


STEPS: dict[str, Callable[[Run], dict]] = {
    "scoring": step_scoring,
    "mfu": step_mfu,
    "pipeline": step_pipeline,
    "memory": step_memory,
    "compile": step_compile,
    "bf16": step_bf16,
}


# ------------------------------------------------------------------------------------- run
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bundle", type=Path, required=True, help="folder written by make gpu-bundle"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json")
    parser.add_argument("--cpu-smoke", action="store_true", help="toy sizes on the CPU (CI)")
    parser.add_argument(
        "--steps", default=",".join(STEPS), help=f"comma-separated, from {', '.join(STEPS)}"
    )
    args = parser.parse_args(argv)
    args.step_list = [name for name in args.steps.split(",") if name]
    if set(args.step_list) - set(STEPS) or not args.step_list:
        parser.error(f"--steps: choose from {', '.join(STEPS)}")
    if not (args.bundle / "manifest.json").is_file():
        parser.error(f"--bundle: {args.bundle} holds no manifest.json; run make gpu-bundle")
    if not args.cpu_smoke:
        import torch

        if not torch.cuda.is_available():
            parser.error("no CUDA device is visible; on a machine without a GPU use --cpu-smoke")
    return args


def run_step(name: str, run: Run) -> dict:
    """One step's figures with its seconds; a failure is recorded, not raised."""
    started = time.perf_counter()
    try:
        figures = STEPS[name](run)
    except Exception as error:  # noqa: BLE001 - every step runs and reports, whatever fails
        traceback.print_exc()
        figures = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    figures["seconds"] = time.perf_counter() - started
    print(f"[gpu_check] {name}: {json.dumps(figures)}", flush=True)
    return figures


def targets(steps: dict[str, dict], total_seconds: float) -> dict:
    """Each target with its measured figure and whether it was met (``None``: not measured)."""
    measured = {
        "mfu_1p7b_packed": steps.get("mfu", {}).get("mfu_1p7b_packed"),
        "packed_over_engine": steps.get("scoring", {}).get("packed_over_engine"),
        "outside_model_share": steps.get("pipeline", {}).get("outside_model_share"),
        "total_minutes": total_seconds / 60,
    }

    def entry(key: str, target: float, at_least: bool) -> dict:
        value = measured[key]
        met = None if value is None else (value >= target if at_least else value <= target)
        return {
            "target": target,
            "at_least" if at_least else "at_most": True,
            "measured": value,
            "met": met,
        }

    return {
        **{key: entry(key, value, True) for key, value in TARGETS.items()},
        **{key: entry(key, value, False) for key, value in TARGET_MOST.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    steps: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check.") as folder:
        run = Run(args, Path(folder))
        for name in args.step_list:
            steps[name] = run_step(name, run)
    total = time.perf_counter() - started
    result = {
        **report_head("gpu_check", run.device),
        "mode": "cpu-smoke" if args.cpu_smoke else "gpu",
        "bundle": json.loads((args.bundle / "manifest.json").read_text()),
        "total_seconds": total,
        "all_ok": all(step["ok"] for step in steps.values()),
        "targets": targets(steps, total),
        "steps": steps,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu_check.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["targets"], indent=1))
    failed = [name for name, step in steps.items() if not step["ok"]]
    print(f"[gpu_check] {total:.0f} s in all; failed steps: {failed or 'none'}; wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
