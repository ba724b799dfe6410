"""The selection pipeline on broken input and bad configuration: every record read is counted
(read = scored + skipped), and a configuration error is one line without a traceback.

The runs are in-process on the tiny model (fast to score), except the one test of the real
command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ai_filters.documents import read_documents
from tests.helpers.broken_inputs import GOOD, SELECT_CORPUS
from tests.helpers.console import error_line_of
from tests.helpers.models import other_shape_heads
from tests.helpers.pipelines import (
    SELECT_SCRIPT,
    console_log_follows_stderr,
    flat,
    load_select_main,
    tiny_input_options,
)


# ------------------------------------------------ the selection pipeline: every record counted
def select_args(inputs: dict[str, Path], out: Path, **changes: str) -> list[str]:
    options = {
        "--out": str(out),
        **tiny_input_options(inputs),
        "--max-tokens": "32",
        "--tasks": "1",
        "--batch-size": "8",
        **changes,
    }
    return flat(options)


@pytest.fixture
def restore_logging():
    yield
    console_log_follows_stderr()


@pytest.fixture(scope="module")
def select_run(select_inputs, tmp_path_factory) -> Path:
    """One complete local run of the selection pipeline over the corpus above."""
    out = tmp_path_factory.mktemp("select_run")
    try:
        assert load_select_main()(select_args(select_inputs, out)) == 0
    finally:
        console_log_follows_stderr()
    return out


def test_pipeline_counts_records_datatrove_readers_would_drop(select_run):
    """Empty, missing, null and non-string text, lone surrogates and unparsable lines are all
    read, skipped with a reason, and counted: read = scored + skipped in the report."""
    report = json.loads((select_run / "report.json").read_text())
    skipped = {
        d["id"]: d["metadata"]
        for path in sorted((select_run / "skipped").glob("**/*.jsonl.gz"))
        for d in read_documents(path)
    }
    for domain, lines in SELECT_CORPUS.items():
        row = report["domains"][domain]
        assert row["read"] == len(lines), domain
        assert row["read"] == row["scored"] + row["skipped"]
        assert row["scored"] == len(GOOD)
    assert skipped["web-empty"]["filter_reason"] == "too_short"
    assert skipped["web-no-text"]["filter_reason"] == "missing_text"
    assert skipped["web-null"]["filter_reason"] == skipped["web-number"]["filter_reason"]
    assert skipped["web-number"]["filter_reason"] == "missing_text"
    assert skipped["web-surrogate"]["filter_reason"] == "untokenizable_text"
    assert skipped["code-spaces"]["filter_reason"] == "too_short"  # one token of spaces
    unreadable = {i: m for i, m in skipped.items() if m.get("skip_reason") == "unreadable"}
    assert {m["source_line"] for m in unreadable.values()} == {10, 6}  # the two broken lines
    assert any("invalid UTF-8" in m["skip_detail"] for m in unreadable.values())


# ---------------------------------------------- configuration errors: one line, no traceback
def test_pipeline_thresholds_without_a_domain_is_one_line(
    select_inputs, select_run, tmp_path, capsys, restore_logging
):
    out = tmp_path / "out"
    shutil.copytree(select_run, out)
    thresholds = json.loads((out / "thresholds.json").read_text())
    del thresholds["code"]
    (out / "thresholds.json").write_text(json.dumps(thresholds))
    shutil.rmtree(out / "logs" / "select" / "completions")  # rerun only the selection stage
    exit_code = load_select_main()(select_args(select_inputs, out))
    message = error_line_of(capsys.readouterr().err, "smollm_select.py")
    assert exit_code == 2
    assert "stage 'select' failed in task 0" in message and "'code'" in message
    log = Path(message.split("(full log: ")[1].split(")")[0])
    assert "Traceback" in log.read_text()  # the traceback is kept in the task's log


@pytest.mark.parametrize("case", ["missing model", "heads of another model"])
def test_pipeline_model_errors_are_one_line(case, select_inputs, tmp_path, capsys, restore_logging):
    changes = (
        {"--model": str(tmp_path / "no-such-model")}
        if case == "missing model"
        else {"--heads": str(other_shape_heads(tmp_path / "heads.json"))}
    )
    exit_code = load_select_main()(select_args(select_inputs, tmp_path / "out", **changes))
    message = error_line_of(capsys.readouterr().err, "smollm_select.py")
    assert exit_code == 2 and "stage 'score' failed in task 0" in message
    assert ("no-such-model" if case == "missing model" else "ai-filters detect-heads") in message


def test_pipeline_unwritable_output_is_one_line(select_inputs, tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "a-file" / "out"  # fails for root too, unlike a chmod-ed folder
    exit_code = load_select_main()(select_args(select_inputs, out))
    message = error_line_of(capsys.readouterr().err, "smollm_select.py")
    assert exit_code == 2 and f"output folder {out} cannot be written" in message
    assert "choose another --out" in message


def test_pipeline_debug_shows_the_original_error(select_inputs, tmp_path, restore_logging):
    from ai_filters.engine.heads_file import HeadsFileError

    heads = other_shape_heads(tmp_path / "heads.json")
    args = select_args(select_inputs, tmp_path / "out", **{"--heads": str(heads)})
    with pytest.raises(HeadsFileError, match="detect-heads"):
        load_select_main()([*args, "--debug"])


def test_pipeline_script_failure_is_one_line_without_traceback(select_inputs, tmp_path):
    """The real command: a task fails inside datatrove; exit code 2, no traceback printed."""
    heads = other_shape_heads(tmp_path / "heads.json")
    args = select_args(select_inputs, tmp_path / "out", **{"--heads": str(heads)})
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(SELECT_SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 2
    assert "stage 'score' failed" in error_line_of(result.stderr, "smollm_select.py")
