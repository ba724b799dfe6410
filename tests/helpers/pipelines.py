"""Running ``pipelines/smollm_select.py`` in tests, as a subprocess or in-process, and reading
what it wrote.

The subprocess runs use :data:`SETTINGS` on the inputs of ``tests/pipelines/conftest.py``
(three domains, the embedded model, :data:`HEADS`).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from ai_filters.documents import read_documents

ROOT = Path(__file__).resolve().parents[2]
SELECT_SCRIPT = ROOT / "pipelines" / "smollm_select.py"
DOMAINS = ("web", "code", "math")
HEADS = [[18, 6], [20, 6], [17, 3], [18, 7], [23, 2]]
MAX_TOKENS = 48
SETTINGS = ["--max-tokens", str(MAX_TOKENS), "--tasks", "2", "--docs-per-batch", "16"]


def select_command(inputs: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(SELECT_SCRIPT),
        "--out",
        str(out),
        "--domains",
        str(inputs / "domains.yaml"),
        "--heads",
        str(inputs / "heads.json"),
        *SETTINGS,
        *extra,
    ]


def tiny_input_options(inputs: dict[str, Path]) -> dict[str, str]:
    """``--domains``, ``--heads`` and ``--model`` of the ``select_inputs`` fixture (the tiny
    model's run), as option -> value."""
    return {
        "--domains": str(inputs["domains"]),
        "--heads": str(inputs["heads"]),
        "--model": str(inputs["model"]),
    }


def flat(options: dict[str, str]) -> list[str]:
    """``{"--a": "1"}`` as ``["--a", "1"]``."""
    return [item for option, value in options.items() for item in (option, value)]


def run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def documents_under(folder: Path, pattern: str) -> list[dict]:
    return [d for path in sorted(folder.glob(pattern)) for d in read_documents(path)]


def outputs(out: Path, score_key: str = "attention_influence") -> dict[str, dict]:
    """id -> score (scored, selected, rejected) or reason (skipped)."""

    def by_id(documents, field):
        return {d["id"]: d["metadata"][field] for d in documents}

    return {
        "scored": by_id(documents_under(out / "scored", "**/*.jsonl.gz"), score_key),
        "skipped": by_id(documents_under(out / "skipped", "**/*.jsonl.gz"), "filter_reason"),
        "selected": by_id(documents_under(out / "selected", "data/**/*.parquet"), score_key),
        "rejected": by_id(documents_under(out / "rejected", "data/**/*.parquet"), score_key),
    }


def load_select_module():
    """pipelines/smollm_select.py as a module, imported from its file."""
    spec = importlib.util.spec_from_file_location("smollm_select", SELECT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_select_main():
    """``main`` of pipelines/smollm_select.py, imported from its file."""
    return load_select_module().main


def console_log_follows_stderr() -> None:
    """After an in-process pipeline run, datatrove's console log still writes to the stderr of
    its last task (here a test's captured stream, closed later): send it to the current one."""
    from loguru import logger

    logger.remove()
    logger.add(lambda message: sys.stderr.write(message))
