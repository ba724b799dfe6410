"""``ai-filters nanotron-config``: write a nanotron WSD pretraining config.

``python -m ai_filters.cli.nanotron --write-shipped nanotron_configs`` regenerates the configs
shipped in the repository.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ai_filters.cli.common import HelpFormatter
from ai_filters.nanotron import (
    LR_DECAY_STYLES,
    PRESETS,
    NanotronConfigError,
    build_config,
    validate,
    write_plan,
    write_shipped,
)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``nanotron-config``; its ``run`` default returns an exit code."""
    parser = subparsers.add_parser(
        "nanotron-config",
        formatter_class=HelpFormatter,
        help="write a nanotron training config (YAML + Slurm launch + LR plot)",
        description="Plan a WSD pretraining run on the tokenized corpus, plus the selection when "
        "given (weights proportional to token counts, as in the paper), and write a nanotron YAML, "
        "a Slurm launch script and a plot of the learning-rate schedule next to it. "
        "None stands for the preset's value, written a / b for the 7b / tiny presets.",
    )
    add = parser.add_argument
    add("--corpus-tokenized", required=True, help="tokenized full corpus (.ds folder)")
    add("--selected-tokenized", default=None, help="tokenized selection (.ds folder)")
    add("--out", required=True, help="YAML to write (.slurm and .png go next to it)")
    add("--model", choices=sorted(PRESETS), default="7b", help="model preset")
    add("--tokens", type=int, default=None, help="training tokens (None: 1e12 / 1e7)")
    add("--global-batch", type=int, default=None, help="sequences per step (None: 1024 / 32)")
    add("--seq-len", type=int, default=None, help="tokens per sequence (None: 8192 / 1024)")
    add("--lr", type=float, default=None, help="peak learning rate (None: 4e-4 / 1e-3)")
    add("--min-lr", type=float, default=None, help="final learning rate (None: lr / 10)")
    add(
        "--decay-style",
        choices=LR_DECAY_STYLES,
        default="linear",
        help="decay shape",
    )
    add("--nodes", type=int, default=1, help="Slurm nodes")
    add("--gpus-per-node", type=int, default=8, help="GPUs per node")
    add("--tp", type=int, default=1, help="tensor parallelism")
    add("--pp", type=int, default=1, help="pipeline parallelism")
    add(
        "--max-micro-batch",
        type=int,
        default=None,
        help="micro batch cap (None: 8k / 16k tokens)",
    )
    add("--run-name", default=None, help="nanotron run name (None: <model>-wsd-<kind>)")
    parser.set_defaults(run=run_nanotron_config)


def run_nanotron_config(args: argparse.Namespace) -> int:
    """Build, validate and write the run; print the plan. Exit code 2 on an invalid config."""
    try:
        plan = build_config(
            args.corpus_tokenized,
            args.selected_tokenized,
            model=args.model,
            tokens=args.tokens,
            global_batch=args.global_batch,
            seq_len=args.seq_len,
            lr=args.lr,
            min_lr=args.min_lr,
            decay_style=args.decay_style,
            nodes=args.nodes,
            gpus_per_node=args.gpus_per_node,
            tp=args.tp,
            pp=args.pp,
            max_micro_batch=args.max_micro_batch,
            run_name=args.run_name,
        )
        validate(plan.config, check_folders=True)
    except NanotronConfigError as error:
        print(f"ai-filters: error: {error}", file=sys.stderr)
        return 2
    written = write_plan(plan, args.out)
    print("\n".join(plan.summary()))
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ai_filters.cli.nanotron --write-shipped nanotron_configs/``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--write-shipped", metavar="DIR", required=True, help="output folder")
    args = parser.parse_args(argv)
    for path in write_shipped(args.write_shipped):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
