"""Fixtures of the fault-suite tests: the scenarios of ``benchmarks/faults.py`` run on the tiny
model, each against one undisturbed run of the same input.

The scenario modules are benchmark modules (``benchmarks/fault_*.py``) and import each other as
the scripts do, from their folder: that folder is put on ``sys.path`` for these tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import fault_outcome  # noqa: E402  (needs the benchmarks folder on sys.path)


@pytest.fixture(scope="session")
def fault_args(tiny) -> list[str]:
    """The selection pipeline's arguments (all but --out) of a small run on the tiny model:
    the demo corpus, 4 documents in each of its 4 domains, 2 tasks."""
    _, heads = tiny
    return [
        "--demo",
        "--docs-per-domain",
        "4",
        "--max-tokens",
        "32",
        "--tasks",
        "2",
        "--heads",
        str(heads),
        "--model",
        str(heads.parent / "model"),
    ]


@pytest.fixture(scope="session")
def tokenize_args(tiny) -> list[str]:
    """The tokenization's arguments (all but --out): the tiny model's tokenizer, 2 tasks."""
    _, heads = tiny
    return ["--tokenizer", str(heads.parent / "model"), "--tasks", "2"]


@pytest.fixture(scope="session")
def fault_inputs(fault_args, tokenize_args, tmp_path_factory) -> fault_outcome.FaultInputs:
    """One undisturbed run of the selection and the tokenization, and its arguments."""
    root = tmp_path_factory.mktemp("baseline") / "out"
    return fault_outcome.undisturbed_run(root, fault_args, tokenize_args)
