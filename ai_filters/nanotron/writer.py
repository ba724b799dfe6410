"""Writing a planned nanotron run: the YAML, its Slurm launch script and its schedule plot.

``write_shipped`` regenerates the configs shipped in ``nanotron_configs/`` (run
``python -m ai_filters.cli.nanotron --write-shipped nanotron_configs``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from ai_filters.executors.secrets import check_no_secret
from ai_filters.nanotron.checks import validate
from ai_filters.nanotron.loading import config_to_dict
from ai_filters.nanotron.plan import Plan, build_config
from ai_filters.nanotron.schedule import plot_schedule
from ai_filters.nanotron.schema import NANOTRON_COMMIT, NanotronConfig
from ai_filters.nanotron.settings import PlanSettings

PAPER_TOKENS = {"corpus": 238_300_000_000, "selected": 73_100_000_000}
SHIPPED_NODES, SHIPPED_GPUS_PER_NODE, SHIPPED_TP = 64, 8, 2
SHIPPED_FOLDERS = ("s3://BUCKET/sel/tokenized/corpus", "s3://BUCKET/sel/tokenized/selected")
PAPER_COUNTS_NOTE = (
    "Token counts are the paper's (cosmo2 tokenizer): corpus 238.3B = FineWeb-Edu-dedup 193.3B + "
    "Cosmopedia-v2 27.9B + Python-Edu 3.8B + OpenWebMath 13.3B; selection (top 20% of documents "
    "per domain) 73.1B."
)
TP2_NOTE = (
    "tp 2: with tp 1 a GPU would hold bf16 weights, fp32 master weights and fp32 gradients "
    "(~70 GB for 7B) before activations of an 8,192-token sequence; tp 2 halves both."
)


def write_config(config: NanotronConfig, yaml_path: str | Path, header: Sequence[str] = ()) -> Path:
    """Validate ``config`` and write it as nanotron YAML, ``header`` lines as leading comments."""
    validate(config)
    comments = "".join(f"# {line}\n" for line in header)
    body = yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)
    path = Path(yaml_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(comments + body, encoding="utf-8")
    return path


@dataclass(frozen=True)
class LaunchSettings:
    """What the Slurm launch script asks the cluster for, beyond the nodes and GPUs.

    ``time`` is a Slurm time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM`` or
    ``D-HH:MM:SS``); ``env_command`` is run first in the job to enter the training environment
    (default: the environment ``sbatch`` is called from). Raises ``ValueError`` for a time
    Slurm would not read or one too short to requeue before it ends, and for a value holding a
    credential (the script is often shared; see :mod:`ai_filters.executors.secrets`).
    """

    partition: str | None = None
    time: str = "24:00:00"
    qos: str | None = None
    account: str | None = None
    env_command: str | None = None

    def __post_init__(self) -> None:
        for name in ("partition", "qos", "account", "env_command"):
            check_no_secret(getattr(self, name) or "", name)
        if slurm_seconds(self.time) <= REQUEUE_LEAD_SECONDS:
            raise ValueError(
                f"--time {self.time} leaves no room to requeue: the job requeues itself "
                f"{REQUEUE_LEAD_SECONDS // 60} minutes before its limit; give a longer --time"
            )


REQUEUE_LEAD_SECONDS = 600
_SLURM_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def slurm_seconds(time: str) -> int:
    """Seconds of a Slurm time limit; ``ValueError`` for a format Slurm does not read."""
    match = _SLURM_TIME.match(time.strip())
    if not match:
        raise ValueError(
            f"--time {time!r} is not a Slurm time: use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM "
            "or D-HH:MM:SS"
        )
    days, first, second, third = match.groups()
    numbers = [int(part) for part in (first, second, third) if part is not None]
    if days is not None:  # D-HH[:MM[:SS]]
        hours, minutes, seconds = (numbers + [0, 0])[:3]
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if len(numbers) == 3:  # HH:MM:SS
        return (numbers[0] * 60 + numbers[1]) * 60 + numbers[2]
    return numbers[0] * 60 + (numbers[1] if len(numbers) == 2 else 0)  # MM[:SS]


SHIPPED_LAUNCH = LaunchSettings(
    partition="gpu", time="24:00:00", env_command="source /path/to/nanotron-env/bin/activate"
)


def write_launch_script(
    config_path: str | Path,
    script_path: str | Path,
    plan: Plan,
    launch: LaunchSettings | None = None,
) -> Path:
    """Write a Slurm script that runs nanotron's ``run_train.py`` on ``config_path``: one
    ``torchrun`` per node through ``srun``. Submit it from the folder ``config_path`` is relative
    to, with ``NANOTRON_DIR`` pointing at a nanotron checkout (main).

    The job is resumable: ``--requeue`` with ``--signal=B:USR1@600``, so ten minutes before the
    time limit the script requeues the job, which then resumes from the config's
    ``resume_checkpoint_path`` (its last checkpoint); the log is appended to, not overwritten.
    """
    launch = launch or LaunchSettings()
    par, gpus = plan.config.parallelism, plan.gpus_per_node
    checkpoints = plan.config.checkpoints
    options = [
        f"job-name={plan.config.general.run}",
        f"nodes={plan.nodes}",
        "ntasks-per-node=1",
        f"gpus-per-node={gpus}",
        *(["exclusive"] if plan.nodes > 1 else []),
        *(f"{name}={value}" for name, value in _cluster_options(launch)),
        f"time={launch.time}",
        "requeue",
        f"signal=B:USR1@{REQUEUE_LEAD_SECONDS}",
        "open-mode=append",
        "output=%x-%j.out",
    ]
    environment = launch.env_command or (
        "# no --env-command: the job runs in the environment sbatch is called from, which must "
        "be the training one"
    )
    sbatch = "".join(f"#SBATCH --{option}\n" for option in options)
    minutes = REQUEUE_LEAD_SECONDS // 60
    comments = [
        f"Generated by ai-filters nanotron-config for huggingface/nanotron main "
        f"({NANOTRON_COMMIT[:8]}).",
        f"{plan.nodes} nodes x {gpus} GPUs = dp {par.dp} x tp {par.tp} x pp {par.pp}",
        f"Resumable: {minutes} minutes before the time limit the job requeues itself, and nanotron",
        f"resumes from {checkpoints.resume_checkpoint_path}/latest.txt (a checkpoint every "
        f"{checkpoints.checkpoint_interval:,} steps).",
        f"Usage: NANOTRON_DIR=/path/to/nanotron sbatch {script_path}",
    ]
    header = "".join(f"# {line}\n" for line in comments)
    text = f"""#!/bin/bash
{sbatch}{header}set -euo pipefail
cd "${{SLURM_SUBMIT_DIR:-.}}"
{environment}
NANOTRON_DIR="${{NANOTRON_DIR:?set NANOTRON_DIR to a checkout of github.com/huggingface/nanotron}}"
CONFIG="${{CONFIG:-{config_path}}}"
MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
MASTER_PORT="${{MASTER_PORT:-29500}}"
export CUDA_DEVICE_MAX_CONNECTIONS=1

requeue() {{
    echo "time limit in {minutes} minutes: requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID"
}}
trap requeue USR1

srun --kill-on-bad-exit=1 torchrun \\
    --nproc_per_node={gpus} \\
    --nnodes={plan.nodes} \\
    --rdzv_id="$SLURM_JOB_ID" \\
    --rdzv_backend=c10d \\
    --rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT" \\
    --max_restarts=0 \\
    "$NANOTRON_DIR/run_train.py" --config-file "$CONFIG" &
wait $!
"""
    path = Path(script_path)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def _cluster_options(launch: LaunchSettings) -> list[tuple[str, str]]:
    named = [("partition", launch.partition), ("qos", launch.qos), ("account", launch.account)]
    return [(name, value) for name, value in named if value]


def write_plan(
    plan: Plan, yaml_path: str | Path, launch: LaunchSettings | None = None
) -> list[Path]:
    """Write the YAML, its ``.slurm`` launch script and its ``.png`` schedule side by side."""
    yaml_path = Path(yaml_path)
    lines = [
        f"nanotron config for huggingface/nanotron main ({NANOTRON_COMMIT[:8]}), written by "
        "`ai-filters nanotron-config` (ai_filters/nanotron/): regenerate rather than edit.",
        *plan.summary(),
    ]
    header = [
        part
        for line in lines
        for part in textwrap.wrap(line, 96, subsequent_indent="  ", break_on_hyphens=False)
    ]
    return [
        write_config(plan.config, yaml_path, header),
        write_launch_script(yaml_path, yaml_path.with_suffix(".slurm"), plan, launch),
        plot_schedule(plan.config, yaml_path.with_suffix(".png"), title=plan.config.general.run),
    ]


def write_shipped(out_dir: str | Path) -> list[Path]:
    """Write the shipped configs: 7B baseline, 7B corpus + selection (both 64 nodes x 8 GPUs,
    tp 2, weights from the paper's token counts) and a tiny 1-GPU smoke test, reading the
    tokenized folders from S3 (nanotron main's trainer requires 's3' in the folder paths)."""
    out = Path(out_dir)
    corpus, selected = SHIPPED_FOLDERS
    baseline = PlanSettings(
        corpus,
        model="7b",
        nodes=SHIPPED_NODES,
        gpus_per_node=SHIPPED_GPUS_PER_NODE,
        tp=SHIPPED_TP,
        token_counts=(PAPER_TOKENS["corpus"],),
        run_name="smollm-7b-wsd-baseline",
    )
    both = (PAPER_TOKENS["corpus"], PAPER_TOKENS["selected"])
    runs = {
        "smollm_7b_wsd_baseline": baseline,
        "smollm_7b_wsd_attention_influence": replace(
            baseline,
            selected_tokenized=selected,
            token_counts=both,
            run_name="smollm-7b-wsd-attention-influence",
        ),
        "tiny_smoke": PlanSettings(
            corpus,
            selected,
            model="tiny",
            nodes=1,
            gpus_per_node=1,
            token_counts=both,
            run_name="tiny-smoke",
        ),
    }
    written = []
    for name, settings in runs.items():
        plan = build_config(settings)
        extra = (PAPER_COUNTS_NOTE,) + ((TP2_NOTE,) if plan.model_name == "7b" else ())
        plan = replace(plan, notes=plan.notes + extra)
        written += write_plan(plan, out / f"{name}.yaml", SHIPPED_LAUNCH)
    return written
