"""Nothing is written outside the output folder: a domain name or a run name that would leave
it is refused in one line before anything is written, and a ``domain`` field in the data names
no folder (the domains file's name does)."""

from __future__ import annotations

import json

import pytest

from ai_filters.cli import main as ai_filters_main
from tests.helpers.pipelines import documents_under, load_select_main

ESCAPES = ["../x", "a/../../b", "/abs", "", "..", "a\\..\\b"]


def _model_args(tiny) -> list[str]:
    _, heads = tiny
    return ["--heads", str(heads), "--model", str(heads.parent / "model"), "--max-tokens", "32"]


@pytest.mark.parametrize("name", ESCAPES)
def test_a_domain_name_that_leaves_the_folder_is_refused_before_writing(
    name, tiny, tmp_path, capsys
):
    (tmp_path / "corpus").mkdir()
    domains = tmp_path / "domains.yaml"
    domains.write_text(json.dumps({name: {"reader": "jsonl", "path": str(tmp_path / "corpus")}}))
    out = tmp_path / "out"
    argv = ["--domains", str(domains), "--out", str(out), *_model_args(tiny)]
    assert load_select_main()(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"domain name '{name}'" in error
    assert not out.exists()


def test_a_domain_field_in_the_data_names_no_folder(tiny, tmp_path, capsys):
    corpus = tmp_path / "data" / "corpus"
    corpus.mkdir(parents=True)
    text = "A paragraph about rivers and the towns along them, long enough to score. " * 4
    lines = [
        {"id": "top", "text": text, "domain": "../../escaped"},
        {"id": "nested", "text": text, "metadata": {"domain": "../../escaped"}},
        {"id": "absolute", "text": text, "domain": "/tmp/escaped"},
    ]
    (corpus / "part.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    domains = tmp_path / "data" / "domains.yaml"
    domains.write_text(json.dumps({"web": {"reader": "jsonl", "path": str(corpus)}}))
    out = tmp_path / "data" / "out"
    argv = ["--domains", str(domains), "--out", str(out), "--tasks", "1", *_model_args(tiny)]
    assert load_select_main()(argv) == 0, capsys.readouterr().err
    scored = documents_under(out / "scored", "*/*.jsonl.gz")
    assert sorted(d["id"] for d in scored) == ["absolute", "nested", "top"]
    assert {d["metadata"]["domain"] for d in scored} == {"web"}
    assert {p.name for p in (out / "scored").iterdir()} == {"web"}
    assert not [p for p in tmp_path.rglob("*escaped*")]


@pytest.mark.parametrize("name", ["../x", "a/b", "/abs", "..", "run\nrm -rf ~"])
def test_a_run_name_that_leaves_the_checkpoint_folder_is_refused(name, tmp_path, capsys):
    out = tmp_path / "configs" / "run.yaml"
    argv = ["nanotron-config", "--model", "tiny", "--out", str(out), "--run-name", name]
    assert ai_filters_main([*argv, "--corpus-tokenized", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"run_name {name!r}" in error
    assert not (tmp_path / "configs").exists()
