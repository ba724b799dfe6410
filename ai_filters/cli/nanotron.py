"""``ai-filters nanotron-config`` writes a nanotron WSD pretraining config and its Slurm launch;
``ai-filters nanotron-check`` is the pre-flight of such a config on a CPU.

``python -m ai_filters.cli.nanotron --write-shipped nanotron_configs`` regenerates the configs
shipped in the repository.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from ai_filters.cli.common import HelpFormatter
from ai_filters.nanotron import (
    LR_DECAY_STYLES,
    PRESETS,
    LaunchSettings,
    NanotronConfigError,
    PlanSettings,
    build_config,
    load_config,
    preflight,
    validate,
    write_plan,
    write_shipped,
)
from ai_filters.nanotron.data import SCAN_TOKENS
from ai_filters.nanotron.plan import first_launch
from ai_filters.nanotron.preflight import MAX_EPOCHS
from ai_filters.nanotron.settings import SELECTION_STAGES


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``nanotron-config`` and ``nanotron-check`` (``args.run(args)`` runs the chosen
    one)."""
    _add_config_parser(commands)
    _add_check_parser(commands)


def _add_config_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
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
    add(
        "--checkpoints-path",
        default=None,
        help="where checkpoints go and a relaunch resumes from (None: checkpoints/<run>)",
    )
    add(
        "--selection-stage",
        choices=SELECTION_STAGES,
        default="all",
        help="all: corpus + selection from step 1 (the paper); decay: the corpus alone in a "
        "stable stage, corpus + up-weighted selection from the WSD decay start (also writes "
        "<out>.stable.yaml, the first launch)",
    )
    add(
        "--decay-selection-weight",
        type=float,
        default=None,
        help="with decay: the selection's weight is W times its token share (None: 2)",
    )
    slurm = parser.add_argument_group("Slurm launch script")
    slurm.add_argument("--partition", default=None, help="partition (None: the cluster's default)")
    slurm.add_argument(
        "--time",
        default="24:00:00",
        help="time limit of one job; 10 minutes before it the job requeues itself and resumes",
    )
    slurm.add_argument("--qos", default=None, help="quality of service")
    slurm.add_argument("--account", default=None, help="account charged")
    slurm.add_argument(
        "--env-command",
        default=None,
        help="shell command run first in the job to enter the training environment, e.g. "
        "'source /fsx/nanotron-env/bin/activate' (None: the environment sbatch is called from)",
    )
    parser.set_defaults(run=run_nanotron_config)


def _add_check_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "nanotron-check",
        formatter_class=HelpFormatter,
        help="pre-flight of a nanotron config: schema, data folders, epochs",
        description="Validate a nanotron config as nanotron main loads it, open every dataset "
        "folder as its reader (OldTokenizedBytesFolderDataset) will, and print per folder: "
        ".ds files, tokens, samples, weight, samples read and epochs (how many times the run "
        "repeats it; one table per data stage, each over its own steps). Exit code 2, one line "
        "per problem, when a folder is missing or empty, "
        "holds no whole sample, holds a token id outside the vocabulary, or would be read more "
        "than --max-epochs times by a stage.",
    )
    parser.add_argument("config", metavar="CONFIG.yaml", help="nanotron config to check")
    parser.add_argument(
        "--max-epochs",
        type=float,
        default=MAX_EPOCHS,
        help="most times the run may repeat a folder",
    )
    parser.add_argument(
        "--scan-tokens",
        type=int,
        default=SCAN_TOKENS,
        help="tokens of each .ds file checked against the vocabulary (0: every token)",
    )
    parser.set_defaults(run=run_nanotron_check)


def run_nanotron_config(args: argparse.Namespace) -> int:
    """Build, validate and write the run; print the plan. Exit code 2 on an invalid config."""
    launch = LaunchSettings(args.partition, args.time, args.qos, args.account, args.env_command)
    settings = _plan_settings(args)
    try:
        plan = build_config(settings)
        validate(plan.config, check_folders=True)
        stable = first_launch(plan) if settings.selection_stage == "decay" else None
    except NanotronConfigError as error:
        print(f"ai-filters: error: {error}", file=sys.stderr)
        return 2
    written = write_plan(plan, args.out, launch)
    if stable is not None:
        written += write_plan(stable, Path(args.out).with_suffix(".stable.yaml"), launch)
    print("\n".join(plan.summary()))
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


def _plan_settings(args: argparse.Namespace) -> PlanSettings:
    """The ``PlanSettings`` of ``nanotron-config``'s options (``ValueError`` for a bad value)."""
    return PlanSettings(
        corpus_tokenized=args.corpus_tokenized,
        selected_tokenized=args.selected_tokenized,
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
        checkpoints_path=args.checkpoints_path,
        selection_stage=args.selection_stage,
        decay_selection_weight=args.decay_selection_weight,
    )


def run_nanotron_check(args: argparse.Namespace) -> int:
    """Print the pre-flight report; exit code 2, each problem one line on stderr, if it fails."""
    try:
        config = load_config(args.config)
    except yaml.YAMLError as error:
        raise ValueError(f"{args.config} is not YAML: {' '.join(str(error).split())}") from None
    except NanotronConfigError as error:
        for problem in error.problems:
            print(f"ai-filters: error: {args.config}: {problem}", file=sys.stderr)
        return 2
    result = preflight(config, args.max_epochs, args.scan_tokens or None)
    print("\n".join([f"config: {args.config}", *result.lines()]))
    for problem in result.problems:
        print(f"ai-filters: error: {problem}", file=sys.stderr)
    return 0 if result.passed else 2


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
