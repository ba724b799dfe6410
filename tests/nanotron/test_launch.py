"""The Slurm launch script: what it asks the cluster for, and that it requeues itself in time."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ai_filters.nanotron import LaunchSettings, build_config, load_config, write_launch_script
from ai_filters.nanotron.writer import slurm_seconds
from tests.nanotron.helpers import SHIPPED, SHIPPED_NAMES


def tiny_plan(tmp_path: Path, nodes: int = 2):
    return build_config(
        "s3://bucket/tokenized/corpus",
        model="tiny",
        nodes=nodes,
        gpus_per_node=4,
        token_counts=[10**9],
        checkpoints_path=str(tmp_path / "ckpt"),
    )


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


def test_usr1_before_the_time_limit_requeues_the_job(tmp_path):
    """The script runs with stand-ins for srun and scontrol; Slurm's USR1 triggers the requeue."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls, started = tmp_path / "scontrol.log", tmp_path / "srun.pid"
    (bin_dir / "scontrol").write_text(
        f'#!/bin/bash\necho "$@" >> {calls}\n[ "$1" = show ] && echo node1\nexit 0\n'
    )
    srun = f"#!/bin/bash\necho $$ > {started}\nexec sleep 30 > /dev/null 2>&1\n"
    (bin_dir / "srun").write_text(srun)  # its output away from the script's, which the test reads
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    script = write_launch_script("run.yaml", tmp_path / "run.slurm", tiny_plan(tmp_path, 1))
    env = os.environ | {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "node1",
        "SLURM_SUBMIT_DIR": str(tmp_path),
        "NANOTRON_DIR": str(tmp_path),
    }
    job = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (started.exists() and started.read_text().strip()):
            assert time.monotonic() < deadline, "the stand-in srun never started"
            time.sleep(0.05)
        job.send_signal(signal.SIGUSR1)
        output, _ = job.communicate(timeout=20)
    finally:
        if started.exists() and started.read_text().strip():
            os.kill(int(started.read_text()), signal.SIGTERM)
        if job.poll() is None:
            job.kill()
    assert "requeueing job 4242" in output
    assert calls.read_text().splitlines() == ["show hostnames node1", "requeue 4242"]
