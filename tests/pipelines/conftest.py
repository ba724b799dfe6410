"""Fixtures of the pipeline tests: the inputs of a selection run and one complete local run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_filters.demo.corpus import local_corpus
from ai_filters.documents import DocumentWriter
from tests.helpers.broken_inputs import SELECT_CORPUS
from tests.helpers.models import write_heads_file
from tests.helpers.pipelines import DOMAINS, HEADS, run, select_command


@pytest.fixture(scope="session")
def inputs(embedded, tmp_path_factory) -> Path:
    """Three domains in two shards each, a too-short document, a domains file, a heads file."""
    folder = tmp_path_factory.mktemp("inputs")
    documents = [
        d for d in local_corpus(12, seed=3, chunk_chars=600) if d["metadata"]["domain"] in DOMAINS
    ]
    documents.append({"text": "Hi", "id": "web/too-short", "metadata": {"domain": "web"}})
    specs = {}
    for domain in DOMAINS:
        in_domain = [d for d in documents if d["metadata"]["domain"] == domain]
        for shard in range(2):
            with DocumentWriter(folder / "corpus" / domain / f"{shard}.jsonl") as writer:
                for document in in_domain[shard::2]:
                    writer.write({**document, "metadata": {}})
        specs[domain] = {"reader": "jsonl", "path": str(folder / "corpus" / domain)}
    (folder / "domains.yaml").write_text(json.dumps(specs))  # JSON is valid YAML
    write_heads_file(embedded, HEADS, folder / "heads.json")
    return folder


@pytest.fixture(scope="session")
def local_run(inputs, tmp_path_factory) -> Path:
    """One complete local selection run over ``inputs`` (shared by the modules of this folder;
    tests only add to it: the tokenization test writes OUT/tokenized/)."""
    out = tmp_path_factory.mktemp("local")
    result = run(select_command(inputs, out))
    assert "| web |" in result.stdout and "pipeline wall time" in result.stdout
    return out


@pytest.fixture(scope="module")
def select_inputs(tiny, tmp_path_factory) -> dict[str, Path]:
    """The corpus above, its domains file, and the tiny model's folder and heads file."""
    folder = tmp_path_factory.mktemp("select_inputs")
    specs = {}
    for domain, lines in SELECT_CORPUS.items():
        (folder / domain).mkdir()
        (folder / domain / "part.jsonl").write_bytes(b"".join(lines))
        specs[domain] = {"reader": "jsonl", "path": str(folder / domain)}
    (folder / "domains.yaml").write_text(json.dumps(specs))  # JSON is valid YAML
    _, heads = tiny
    return {"domains": folder / "domains.yaml", "heads": heads, "model": heads.parent / "model"}
