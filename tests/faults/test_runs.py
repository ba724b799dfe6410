"""Runs that meet in one output folder (``benchmarks/fault_runs.py``): two at once, a killed
run's lock, a resume with changed inputs; each ends with the undisturbed run's outcome."""

from __future__ import annotations

import shutil

import pytest
from fault_outcome import TOKENIZE_SCRIPT, compare_outcomes, last_line, read_outcome, run_script
from fault_runs import SCENARIOS

pytestmark = pytest.mark.slow  # each scenario runs the selection pipeline two to five times


def survived(result) -> None:
    assert result.survived, result.detail
    assert result.documents_lost == 0 and result.duplicated_ids == 0


def test_two_runs_on_one_out_one_is_refused_in_one_line(fault_inputs, tmp_path):
    result = SCENARIOS["two runs on one --out"](tmp_path, fault_inputs)
    survived(result)
    refusal = result.detail.removeprefix("refused: ")
    assert refusal.startswith("smollm_select.py: error: ") and f"{tmp_path / 'out'}" in refusal
    assert "is in use by another run (host " in refusal and "remove " in refusal


def test_a_killed_runs_lock_is_taken_over_by_the_rerun(fault_inputs, tmp_path):
    result = SCENARIOS["a killed run's lock"](tmp_path, fault_inputs)
    survived(result)
    assert "killed mid-scoring: True; lock left: True; rerun exit 0; taking over" in result.detail
    assert result.detail.endswith("its process no longer exists")


def test_a_resume_with_changed_inputs_is_refused_naming_them(fault_inputs, tmp_path):
    result = SCENARIOS["inputs changed before a resume"](tmp_path, fault_inputs)
    survived(result)
    for option in ("--heads (sha256:", "--model (sha256:", "--fraction (0.2 -> 0.35)"):
        assert option in result.detail
    assert "folder unchanged: True; original resume exit 0" in result.detail


def test_a_tokenization_rerun_with_another_seed_is_refused(fault_inputs, tmp_path):
    """The tokenization's own fingerprint: another shuffling seed would mix two orders."""
    out = shutil.copytree(fault_inputs.root, tmp_path / "out")
    args = fault_inputs.tokenize_args
    refused = run_script(TOKENIZE_SCRIPT, out, [*args, "--seed", "1"])
    line = last_line(refused)
    assert refused.returncode == 2 and line.startswith("tokenize_for_nanotron.py: error: ")
    assert "was started with other inputs" in line and "--seed (0 -> 1)" in line
    assert run_script(TOKENIZE_SCRIPT, out, args).returncode == 0
    assert compare_outcomes(fault_inputs.tokenized, read_outcome(out)) == (True, 0, 0, "")
