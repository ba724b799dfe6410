"""Tokenizing the scored corpus and the selection of a local run into nanotron's .ds files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers.pipelines import ROOT, documents_under, run

# every test here runs the selection pipeline or shares its 2-minute local run
pytestmark = pytest.mark.slow


def tokenize(out: Path, tokenizer: Path, *extra: str) -> None:
    script = str(ROOT / "pipelines" / "tokenize_for_nanotron.py")
    run([sys.executable, script, "--out", str(out), "--tokenizer", str(tokenizer), *extra])


def test_tokenized_for_nanotron(embedded, local_run, tmp_path):
    """Each task writes its own .ds file (with index and metadata) from the selection's own
    output: every scored document in the corpus, the selected ones in the selection."""
    tokenizer = Path(embedded.model.name_or_path) / "tokenizer.json"
    tokenize(local_run, tokenizer, "--tasks", "2")
    expected = {}
    for name, documents in (
        ("corpus", documents_under(local_run / "scored", "**/*.jsonl.gz")),
        ("selected", documents_under(local_run / "selected", "data/**/*.parquet")),
    ):
        expected[name] = sum(len(embedded.tokenizer(d["text"]).input_ids) + 1 for d in documents)
        files = sorted((local_run / "tokenized" / name).glob("*.ds"))
        assert len(files) == 2, files  # one per task
        for data_file in files:
            assert (data_file.parent / f"{data_file.name}.index").is_file()
            assert (data_file.parent / f"{data_file.name}.metadata").is_file()
        assert sum(f.stat().st_size for f in files) == 2 * expected[name]  # uint16 + one EOS
    assert expected["selected"] < expected["corpus"]


def test_merge_leaves_one_file_per_folder(embedded, local_run, tmp_path):
    copy = tmp_path / "run"
    copy.mkdir()
    for part in ("scored", "selected"):
        (copy / part).symlink_to(local_run / part, target_is_directory=True)
    tokenize(copy, Path(embedded.model.name_or_path) / "tokenizer.json", "--merge")
    for name in ("corpus", "selected"):
        assert [f.name for f in (copy / "tokenized" / name).glob("*.ds")] == [f"000_{name}.ds"]
