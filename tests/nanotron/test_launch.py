"""The Slurm launch script: what it asks the cluster for, and that it requeues itself on the
cluster (the real one-node Slurm of `.ci/start_slurm.sh`)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from ai_filters.nanotron import (
    LaunchSettings,
    PlanSettings,
    build_config,
    load_config,
    write_launch_script,
)
from ai_filters.nanotron.writer import slurm_seconds
from tests.helpers.slurm import job_fields, require_slurm, wait_for_job_field
from tests.nanotron.helpers import SHIPPED, SHIPPED_NAMES


def tiny_plan(tmp_path: Path, nodes: int = 2):
    settings = PlanSettings(
        "s3://bucket/tokenized/corpus",
        model="tiny",
        nodes=nodes,
        gpus_per_node=4,
        token_counts=(10**9,),
        checkpoints_path=str(tmp_path / "ckpt"),
    )
    return build_config(settings)


def test_script_carries_the_cluster_options_and_requeue(tmp_path):
    launch = LaunchSettings("hopper", "2-00:00:00", "high", "proj", "source /fsx/env/bin/activate")
    script = write_launch_script("run.yaml", tmp_path / "run.slurm", tiny_plan(tmp_path), launch)
    text = script.read_text()
    for line in (
        "#SBATCH --partition=hopper",
        "#SBATCH --qos=high",
        "#SBATCH --account=proj",
        "#SBATCH --time=2-00:00:00",
        "#SBATCH --requeue",
        "#SBATCH --signal=B:USR1@600",
        "#SBATCH --open-mode=append",
        "#SBATCH --exclusive",
        "source /fsx/env/bin/activate",
        f"# resumes from {tmp_path / 'ckpt'}/latest.txt (a checkpoint every",
    ):
        assert line in text
    subprocess.run(["bash", "-n", str(script)], check=True)
    plain = write_launch_script("run.yaml", tmp_path / "plain.slurm", tiny_plan(tmp_path, 1))
    text = plain.read_text()
    assert "--partition" not in text and "--qos" not in text and "--exclusive" not in text
    assert "#SBATCH --time=24:00:00" in text and "# no --env-command" in text


def test_resume_path_is_the_checkpoints_path(tmp_path):
    checkpoints = tiny_plan(tmp_path).config.checkpoints
    assert checkpoints.resume_checkpoint_path == checkpoints.checkpoints_path
    assert checkpoints.checkpoints_path == str(tmp_path / "ckpt")


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_shipped_configs_resume_and_requeue(name):
    checkpoints = load_config(SHIPPED / f"{name}.yaml").checkpoints
    assert checkpoints.resume_checkpoint_path == checkpoints.checkpoints_path
    script = (SHIPPED / f"{name}.slurm").read_text()
    assert "#SBATCH --requeue" in script and "#SBATCH --partition=gpu" in script
    assert "#SBATCH --time=24:00:00" in script and "trap requeue USR1" in script


def test_slurm_times():
    assert slurm_seconds("90") == 90 * 60
    assert slurm_seconds("30:15") == 30 * 60 + 15
    assert slurm_seconds("24:00:00") == 86_400
    assert slurm_seconds("1-12") == 36 * 3600
    assert slurm_seconds("2-00:30:00") == 2 * 86_400 + 1800
    with pytest.raises(ValueError, match="is not a Slurm time"):
        slurm_seconds("1 day")
    with pytest.raises(ValueError, match="leaves no room to requeue"):
        LaunchSettings(time="00:10:00")


def test_usr1_requeues_the_job_on_the_cluster(tmp_path):
    """The generated script submitted to the real one-node cluster (GPUs asked off on the
    command line, a stand-in torchrun that waits): Slurm's USR1 to the batch shell makes the
    script run the real ``scontrol requeue``, and the cluster puts the job back in the queue."""
    require_slurm()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    started = tmp_path / "torchrun.started"
    torchrun = bin_dir / "torchrun"
    torchrun.write_text(f"#!/bin/bash\necho $SLURM_JOB_ID >> {started}\nexec sleep 300\n")
    torchrun.chmod(0o755)
    script = write_launch_script("run.yaml", tmp_path / "run.slurm", tiny_plan(tmp_path, 1))
    env = os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "NANOTRON_DIR": str(tmp_path)}
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--partition=debug", "--gpus-per-node=0", "--mem-per-cpu=100M"]
        + [str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    job = submitted.stdout.strip().split(";")[0]
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline, "the job's torchrun never started"
            time.sleep(0.2)
        assert job_fields(job)["Restarts"] == "0"
        subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True)
        wait_for_job_field(job, "Restarts", "1")
        # the running instance is ended (COMPLETING) and the job goes back to the queue
        wait_for_job_field(job, "JobState", "PENDING", "REQUEUED")
        output = (tmp_path / f"tiny-wsd-baseline-{job}.out").read_text()
        assert f"requeueing job {job}" in output
    finally:
        subprocess.run(["scancel", job], capture_output=True)
