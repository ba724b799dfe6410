"""A scoring task killed with SIGKILL in the middle of writing its output, on the one-node Slurm
cluster, then requeued and the launch command run again: the same selection, and no partial
file under an output name at any point (``benchmarks/fault_slurm.py``)."""

from __future__ import annotations

import pytest
from fault_slurm import NAME, killed_mid_write

from tests.helpers.slurm import require_slurm


@pytest.mark.slow
def test_a_task_killed_mid_write_and_requeued_selects_the_same(
    fault_inputs, tmp_path, measurements
):
    require_slurm()
    result = killed_mid_write(tmp_path, fault_inputs)
    measurements.append(f"{NAME}: {result.seconds} s ({result.detail})")
    assert result.survived, result.detail
    assert result.documents_lost == 0 and result.duplicated_ids == 0
    assert "partial files under output names: 0;" in result.detail
    assert "output files open (" in result.detail  # it was killed with its files open
    # the stages after scoring never ran on the killed task's files; the rerun only them
    assert "the rerun submitted score=-1, thresholds=" in result.detail
