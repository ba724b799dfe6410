"""The one-node Slurm cluster the Slurm tests submit to (``.ci/start_slurm.sh``), and reading
jobs back from it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest


def slurm_available() -> bool:
    """Whether ``sinfo`` answers: a cluster is up and reachable."""
    return (
        shutil.which("sinfo") is not None
        and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0
    )


def require_slurm() -> None:
    """Skip without a cluster, except in CI (``CI`` set), where a missing cluster fails: CI
    starts one with ``.ci/start_slurm.sh`` before the tests."""
    if slurm_available():
        return
    if os.environ.get("CI"):
        pytest.fail("CI must run the Slurm tests: .ci/start_slurm.sh did not start Slurm")
    pytest.skip("no Slurm cluster here (start one with .ci/start_slurm.sh)")


def job_fields(job_id: str) -> dict[str, str]:
    """``scontrol show job`` of ``job_id`` (its first record) as ``{field: value}``."""
    shown = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", job_id],
        capture_output=True,
        text=True,
        check=True,
    )
    first = shown.stdout.splitlines()[0]
    return dict(re.findall(r"(\w+)=(\S*)", first))


def wait_for_job_field(job_id: str, field: str, *values: str, timeout: float = 60.0) -> None:
    """Poll ``scontrol show job`` until ``field`` of ``job_id`` reads one of ``values``."""
    deadline = time.monotonic() + timeout
    while (current := job_fields(job_id).get(field)) not in values:
        assert time.monotonic() < deadline, f"job {job_id}: {field}={current}, never {values}"
        time.sleep(0.2)
