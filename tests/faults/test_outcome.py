"""The comparison every fault scenario rests on: it sees a lost and a duplicated document."""

from __future__ import annotations

import copy
from pathlib import Path

from fault_outcome import compare_outcomes, read_outcome


def test_the_undisturbed_run_reads_back_whole(fault_inputs):
    full = fault_inputs.tokenized
    assert len(full.ids["scored"]) + len(full.ids["skipped"]) == 16
    assert full.tokenized["corpus"]["documents"] == len(full.ids["scored"])
    assert full.tokenized["selected"]["documents"] == len(full.ids["selected"]) > 0
    assert compare_outcomes(full, read_outcome(fault_inputs.root)) == (True, 0, 0, "")


def test_a_lost_and_a_duplicated_document_are_counted(fault_inputs):
    run = copy.deepcopy(fault_inputs.tokenized)
    lost = run.ids["scored"].pop()
    run.ids["selected"].append(run.ids["selected"][0])
    run.tokenized["corpus"]["documents"] += 1
    same, lost_count, duplicated, differences = compare_outcomes(fault_inputs.tokenized, run)
    assert not same and "scored ids differ" in differences and "selected ids differ" in differences
    assert lost_count == (lost not in run.ids["skipped"]) and duplicated == 2


def test_the_suite_runs_every_scenario_module():
    """faults.py names each fault_*.py module that holds scenarios: none is left out."""
    import importlib

    import faults

    modules = sorted(path.stem for path in Path(faults.__file__).parent.glob("fault_*.py"))
    with_scenarios = [m for m in modules if hasattr(importlib.import_module(m), "SCENARIOS")]
    assert sorted(faults.MODULES) == with_scenarios
    names = list(faults.all_scenarios())
    assert len(names) == len(set(names)) >= 10
