"""`ai-filters score` and `detect-heads`, run as a user runs them: real subprocesses, real
files; broken input and configuration errors."""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ai_filters.cli import main as cli_main
from ai_filters.documents import read_documents
from ai_filters.engine.numerics import loss_rtol, score_atol
from tests.helpers.broken_inputs import GOOD, line, write_broken_inputs
from tests.helpers.console import error_line_of
from tests.helpers.models import other_shape_heads, write_heads_file

HEADS = [(18, 6), (20, 6), (17, 3)]

DOCUMENTS = [
    {
        "text": "The mitochondria is the powerhouse of the cell. It makes ATP from glucose and "
        "oxygen through a chain of reactions.",
        "id": "bio-1",
        "metadata": {"domain": "web", "url": "https://example.org/a"},
    },
    {
        "text": "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
        "id": "code-1",
        "metadata": {"domain": "code"},
    },
    {"text": "", "id": "empty-1", "metadata": {"domain": "web"}},
    {
        "text": "Let x be a real number with x^2 = 4. Then x = 2 or x = -2, since the square "
        "function is even.",
        "id": "math-1",
        "metadata": {"domain": "math"},
    },
]


def ai_filters(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ai_filters.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=900,
    )


@pytest.fixture(scope="module")
def heads_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("heads")
    result = ai_filters(
        "detect-heads",
        "--out",
        str(out / "heads.json"),
        "--num-probes",
        "3",
        "--max-tokens",
        "512",
        "--plot",
        str(out / "heads.png"),
    )
    assert result.returncode == 0, result.stderr
    assert "top heads" in result.stdout
    assert (out / "heads.png").stat().st_size > 1000
    heads = json.loads((out / "heads.json").read_text())
    assert set(heads) >= {
        "model",
        "model_fingerprint",
        "num_layers",
        "num_heads",
        "num_kv_heads",
        "scores",
        "selected",
        "settings",
    }
    assert (heads["num_layers"], heads["num_heads"], heads["num_kv_heads"]) == (30, 9, 3)
    assert len(heads["selected"]) == 14 and heads["settings"]["num_probes"] == 3
    assert heads["settings"]["probe_scoring"] == "gold"
    return out / "heads.json"


def test_detect_heads_with_generated_scoring(tmp_path):
    """The option reaches the heads file, with how many probes the model retrieved."""
    out = tmp_path / "heads.json"
    result = ai_filters(
        "detect-heads", "--out", str(out), "--num-probes", "2", "--max-tokens", "512",
        "--probe-scoring", "generated",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    settings = json.loads(out.read_text())["settings"]
    assert settings["probe_scoring"] == "generated"
    assert 1 <= settings["probes_counted"] <= 2
    assert "generated scoring over" in result.stdout


def write_input(path: Path) -> None:
    if path.name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(DOCUMENTS), path)
        return
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for document in DOCUMENTS:
            handle.write(json.dumps(document) + "\n")


@pytest.fixture(scope="module")
def scored_by_format(heads_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("score")
    results = {}
    for suffix, skipped_name in [
        (".jsonl", "out.skipped.jsonl"),
        (".jsonl.gz", "out.skipped.jsonl.gz"),
        (".parquet", "out.skipped.parquet"),
    ]:
        source, target = folder / f"in{suffix}", folder / f"out{suffix}"
        write_input(source)
        result = ai_filters(
            "score",
            "--heads",
            str(heads_file),
            "--input",
            str(source),
            "--output",
            str(target),
            "--max-tokens",
            "128",
        )
        assert result.returncode == 0, result.stderr
        results[suffix] = (
            list(read_documents(target)),
            list(read_documents(folder / skipped_name)),
            result.stdout,
        )
    return results


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".parquet"])
def test_score_round_trip(scored_by_format, suffix):
    scored, skipped, stdout = scored_by_format[suffix]
    assert [document["id"] for document in scored] == ["bio-1", "code-1", "math-1"]
    originals = {document["id"]: document for document in DOCUMENTS}
    for document in scored:
        original = originals[document["id"]]
        assert document["text"] == original["text"]
        for key, value in original["metadata"].items():
            assert document["metadata"][key] == value
        metadata = document["metadata"]
        assert math.isfinite(metadata["attention_influence"])
        assert metadata["ai_loss_base"] > 0 and metadata["ai_loss_ref"] > 0
        assert metadata["attention_influence"] == pytest.approx(
            (metadata["ai_loss_ref"] - metadata["ai_loss_base"]) / metadata["ai_loss_base"]
        )
        assert 2 <= metadata["ai_n_tokens"] <= 128
    assert [(d["id"], d["metadata"]["skip_reason"]) for d in skipped] == [("empty-1", "too_short")]
    assert "web | 2 | 1 | 1 |" in stdout  # read = scored + skipped per domain


def test_formats_give_the_same_scores(scored_by_format, embedded_config):
    def scores(suffix):
        return [d["metadata"]["attention_influence"] for d in scored_by_format[suffix][0]]

    # three processes score the same batches; only the kernels' rounding may differ
    rtol = loss_rtol(embedded_config, 128)
    for suffix in (".jsonl.gz", ".parquet"):
        for found, expected in zip(scores(suffix), scores(".jsonl"), strict=True):
            assert found == pytest.approx(expected, abs=score_atol(expected, rtol))


def test_errors_are_one_line_without_traceback(tmp_path, heads_file):
    write_input(tmp_path / "in.jsonl")
    missing = ai_filters(
        "score",
        "--heads",
        str(tmp_path / "nope.json"),
        "--input",
        str(tmp_path / "in.jsonl"),
        "--output",
        str(tmp_path / "o.jsonl"),
    )
    assert missing.returncode == 2
    assert "detect-heads" in missing.stderr and "Traceback" not in missing.stderr
    bad_type = ai_filters(
        "score",
        "--heads",
        str(heads_file),
        "--input",
        str(tmp_path / "in.jsonl"),
        "--output",
        str(tmp_path / "o.csv"),
    )
    assert bad_type.returncode == 2 and "unsupported file type" in bad_type.stderr


def test_help_explains_every_option():
    result = ai_filters("score", "--help")
    assert result.returncode == 0
    for option in (
        "--model",
        "--heads",
        "--input",
        "--output",
        "--text-key",
        "--max-tokens",
        "--batch-size",
        "--mask-mode",
        "--windows",
    ):
        assert option in result.stdout
    detect = ai_filters("detect-heads", "--help").stdout
    for option in (
        "--num-probes",
        "--top-fraction",
        "--max-tokens",
        "--seed",
        "--plot",
        "--probe-scoring",
    ):
        assert option in detect


# ------------------------------------------------- broken input and configuration errors
@pytest.fixture
def broken_inputs(tmp_path) -> list[Path]:
    """One file of every kind of bad record, a truncated .jsonl.gz and a corrupt parquet."""
    return write_broken_inputs(tmp_path)


def test_cli_reports_broken_files_and_goes_on(broken_inputs, tmp_path, embedded):
    heads = write_heads_file(embedded, HEADS, tmp_path / "heads.json")
    command = [
        sys.executable,
        "-m",
        "ai_filters.cli",
        "score",
        "--heads",
        str(heads),
        "--input",
        *map(str, broken_inputs),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--max-tokens",
        "32",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "unreadable: " in result.stdout and "corrupt.parquet" in result.stdout
    strict = subprocess.run(
        [*command, "--strict"], capture_output=True, text=True, env=env, timeout=600
    )
    assert strict.returncode == 2 and "bad.jsonl:5" in strict.stderr
    assert "Traceback" not in strict.stderr


@pytest.mark.parametrize("case", ["missing model", "heads of another model", "unwritable output"])
def test_score_configuration_errors_are_one_line(case, tiny, tmp_path, capsys):
    _, heads = tiny
    (tmp_path / "in.jsonl").write_bytes(line({"id": "a", "text": GOOD[0]}))
    options = {
        "--heads": str(heads),
        "--model": str(heads.parent / "model"),
        "--input": str(tmp_path / "in.jsonl"),
        "--output": str(tmp_path / "out.jsonl"),
    }
    if case == "missing model":
        options["--model"] = str(tmp_path / "no-such-model")
    elif case == "heads of another model":
        options["--heads"] = str(other_shape_heads(tmp_path / "heads.json"))
    else:
        (tmp_path / "a-file").write_text("not a folder")
        options["--output"] = str(tmp_path / "a-file" / "out.jsonl")
    argv = ["score", *(item for pair in options.items() for item in pair)]
    exit_code = cli_main(argv)
    message = error_line_of(capsys.readouterr().err, "ai-filters")
    assert exit_code == 2
    expected = {
        "missing model": "no-such-model",
        "heads of another model": "ai-filters detect-heads",
        "unwritable output": "cannot be written (a file is in the way); choose another --output",
    }
    assert expected[case] in message
    assert not (tmp_path / "out.jsonl").exists()
