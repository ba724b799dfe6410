"""Tokenizing the corpus and the selection of a local run into nanotron's .ds files."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers.pipelines import ROOT, documents_under, run


def test_tokenized_for_nanotron(embedded, inputs, local_run):
    tokenizer = Path(embedded.model.name_or_path) / "tokenizer.json"
    run(
        [
            sys.executable,
            str(ROOT / "pipelines" / "tokenize_for_nanotron.py"),
            "--out",
            str(local_run),
            "--domains",
            str(inputs / "domains.yaml"),
            "--tokenizer",
            str(tokenizer),
            "--tasks",
            "2",
        ]
    )
    expected = {}
    for name, documents in (
        ("corpus", documents_under(inputs / "corpus", "**/*.jsonl")),
        ("selected", documents_under(local_run / "selected", "data/**/*.parquet")),
    ):
        expected[name] = sum(len(embedded.tokenizer(d["text"]).input_ids) + 1 for d in documents)
        folder = local_run / "tokenized" / name
        (data_file,) = folder.glob("*.ds")
        assert (folder / f"{data_file.name}.index").is_file()
        assert (folder / f"{data_file.name}.metadata").is_file()
        assert data_file.stat().st_size == 2 * expected[name]  # uint16 tokens + one EOS each
    assert expected["selected"] < expected["corpus"]
