"""``ai-filters distill`` on a real selection, the pipeline selecting with ``--scorer
distilled``, and ``ai-filters compare --only-ids`` on the held-out documents.

The teacher is a real AttentionInfluence selection of a small real corpus, scored by the tiny
Llama (milliseconds per document) through pipelines/smollm_select.py, in process.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from ai_filters.cli import main as cli_main
from ai_filters.demo.corpus import local_corpus
from ai_filters.distill import load_model, read_record
from ai_filters.documents import read_documents
from ai_filters.selection.thresholds import top_fraction_threshold
from tests.helpers.distill import grouped, synthetic_documents, write_scored_selection
from tests.helpers.models import tiny_model_and_heads

SELECT_SCRIPT = Path(__file__).resolve().parents[2] / "pipelines" / "smollm_select.py"
DOMAINS = ("web", "textbook", "code", "math")
AWKWARD = [  # what every scorer skips, with the reason
    ({"id": "web/one-token", "text": "Hi"}, "too_short"),
    ({"id": "web/surrogate", "text": "lone \ud800 surrogate in a sentence"}, "untokenizable_text"),
    ({"id": "code/null", "text": None}, "missing_text"),
]


def source(record: dict) -> dict:
    """The metadata the test corpus keeps: the text a piece was cut from (the group key)."""
    return {k: v for k, v in record.get("metadata", {}).items() if k == "source_text"}


def select_main():
    """``main`` of pipelines/smollm_select.py, imported from its file."""
    spec = importlib.util.spec_from_file_location("smollm_select", SELECT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def run_select(*arguments: str) -> None:
    from loguru import logger

    try:
        assert select_main()(["--tasks", "1", "--batch-size", "16", *arguments]) == 0
    finally:  # datatrove's console log would keep writing to this test's captured stderr
        logger.remove()
        logger.add(lambda message: sys.stderr.write(message))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> dict[str, Path]:
    """A corpus of 4 x 15 real documents and the awkward ones, and its AttentionInfluence
    selection by the tiny Llama."""
    folder = tmp_path_factory.mktemp("distill_cli")
    _, heads = tiny_model_and_heads(folder)
    specs = {}
    documents = local_corpus(15, seed=4, chunk_chars=600)
    for domain in DOMAINS:
        records = [d for d in documents if d["metadata"]["domain"] == domain]
        records += [d for d, _ in AWKWARD if d["id"].startswith(domain)]
        lines = [json.dumps({**record, "metadata": source(record)}) + "\n" for record in records]
        (folder / "corpus" / domain).mkdir(parents=True)
        (folder / "corpus" / domain / "part.jsonl").write_text("".join(lines))  # \ud800 escaped
        specs[domain] = {"reader": "jsonl", "path": str(folder / "corpus" / domain)}
    (folder / "domains.yaml").write_text(json.dumps(specs))  # JSON is valid YAML
    common = ["--domains", str(folder / "domains.yaml"), "--max-tokens", "32"]
    model = str(folder / "model")
    run_select(*common, "--heads", str(heads), "--model", model, "--out", str(folder / "ai"))
    return {"folder": folder, "ai": folder / "ai", "domains": folder / "domains.yaml"}


@pytest.fixture(scope="module")
def model_dir(teacher) -> Path:
    out = teacher["folder"] / "model"
    assert cli_main(["distill", str(teacher["ai"]), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def distilled_run(teacher, model_dir) -> Path:
    out = teacher["folder"] / "distilled"
    run_select(
        "--domains",
        str(teacher["domains"]),
        "--scorer",
        "distilled",
        "--distilled-model",
        str(model_dir),
        "--out",
        str(out),
    )
    return out


def documents_under(folder: Path, pattern: str) -> dict[str, dict]:
    return {d["id"]: d for path in sorted(folder.glob(pattern)) for d in read_documents(path)}


def test_distill_writes_the_model_and_its_record(teacher, model_dir, capsys):
    record = read_record(model_dir)
    heads = json.loads((teacher["ai"] / "heads.json").read_text())
    trained = record["trained_on"]
    assert trained["scorer"] == "attention_influence"
    assert trained["heads_fingerprint"] == heads["model_fingerprint"]
    assert trained["selector_model"] == heads["model"]
    scored = documents_under(teacher["ai"] / "scored", "**/*.jsonl.gz")
    assert sum(row["scored"] for row in trained["documents"].values()) == len(scored) == 60
    heldout = (model_dir / "heldout_ids.txt").read_text().splitlines()
    assert set(heldout) <= set(scored) and len(heldout) == record["holdout"]["documents"] > 0
    training = (model_dir / "training_ids.txt").read_text().splitlines()
    assert len(training) == record["training"]["documents"] and not set(training) & set(heldout)
    texts = {i: d["metadata"].get("source_text") for i, d in scored.items()}
    assert all(texts.values())  # every piece names its text: groups of pieces, not of one
    assert not {texts[i] for i in heldout} & {texts[i] for i in training}
    assert record["holdout"]["group_key"] == "source_text"
    assert record["holdout"]["heldout_groups"] == len({texts[i] for i in heldout})
    assert cli_main(["distill", str(teacher["ai"]), "--out", str(model_dir)]) == 2
    assert "give --overwrite" in capsys.readouterr().err
    assert cli_main(["distill", str(teacher["folder"] / "corpus"), "--out", "unused"]) == 2
    assert "scorer.json is missing" in capsys.readouterr().err


def test_pipeline_selects_with_the_distilled_scorer(teacher, model_dir, distilled_run):
    """The same population as the teacher's (the same skips), scored by the model, selected
    by the same threshold stages: exactly the top 20 % of each domain by distilled_score."""
    assert json.loads((distilled_run / "scorer.json").read_text()) == {
        "scorer": "distilled",
        "score_key": "distilled_score",
        "fraction": 0.2,
    }
    scored = documents_under(distilled_run / "scored", "**/*.jsonl.gz")
    teacher_scored = documents_under(teacher["ai"] / "scored", "**/*.jsonl.gz")
    assert scored.keys() == teacher_scored.keys()
    skipped = documents_under(distilled_run / "skipped", "**/*.jsonl.gz")
    teacher_skipped = documents_under(teacher["ai"] / "skipped", "**/*.jsonl.gz")
    reasons = {i: d["metadata"]["filter_reason"] for i, d in skipped.items()}
    assert reasons == {d["id"]: reason for d, reason in AWKWARD}
    assert reasons == {i: d["metadata"]["filter_reason"] for i, d in teacher_skipped.items()}
    model = load_model(model_dir)
    ids = sorted(scored)
    domains = [scored[i]["metadata"]["domain"] for i in ids]
    predictions = model.predict([scored[i]["text"] for i in ids], domains)
    for doc_id, prediction in zip(ids, predictions, strict=True):
        metadata = scored[doc_id]["metadata"]
        assert metadata["distilled_score"] == prediction  # the same dot product: exact
        assert metadata["ai_doc_tokens"] == teacher_scored[doc_id]["metadata"]["ai_doc_tokens"]
    selected = documents_under(distilled_run / "selected", "data/**/*.parquet")
    for domain in DOMAINS:
        in_domain = sorted(
            (
                d["metadata"]["distilled_score"]
                for d in scored.values()
                if d["metadata"]["domain"] == domain
            ),
            reverse=True,
        )
        kept = [d for d in selected.values() if d["metadata"]["domain"] == domain]
        assert len(kept) == math.ceil(0.2 * len(in_domain))  # continuous scores: no ties
        assert min(d["metadata"]["distilled_score"] for d in kept) == in_domain[len(kept) - 1]


def test_compare_restricts_to_the_heldout_documents(teacher, model_dir, distilled_run, capsys):
    out = teacher["folder"] / "compare"
    arguments = [f"ai={teacher['ai']}", f"distilled={distilled_run}", "--out", str(out)]
    assert cli_main(["compare", *arguments, "--only-ids", str(model_dir)]) == 0
    heldout = set((model_dir / "heldout_ids.txt").read_text().splitlines())
    assert f"on the {len(heldout)} ids of {model_dir}" in capsys.readouterr().out
    result = json.loads((out / "compare.json").read_text())
    restriction = result["only_ids"]
    assert (restriction["source"], restriction["ids"]) == (str(model_dir), len(heldout))
    record = read_record(model_dir)
    scored = {
        name: documents_under(folder / "scored", "**/*.jsonl.gz")
        for name, folder in (("ai", teacher["ai"]), ("distilled", distilled_run))
    }
    keys = {"ai": "attention_influence", "distilled": "distilled_score"}
    for domain, part in result["domains"].items():
        pair = part["pairs"][0]
        assert pair["scored_both"] == record["trained_on"]["documents"][domain]["heldout"]
        assert pair["scored_only_a"] == pair["scored_only_b"] == 0
        for name, side in (("ai", "a"), ("distilled", "b")):
            # each selection made again among the held-out documents: thresholds from them
            held = [
                (d["metadata"][keys[name]], d["metadata"]["ai_doc_tokens"])
                for i, d in scored[name].items()
                if i in heldout and d["metadata"]["domain"] == domain
            ]
            scores, tokens = np.array(held).T
            expected = top_fraction_threshold(scores, tokens, 0.2)
            assert restriction["thresholds"][name][domain] == expected.threshold
            assert pair[f"selected_{side}"] == expected.documents_selected
    assert "Restricted to the" in (out / "compare.md").read_text()
    ids_file = teacher["folder"] / "two_ids.txt"
    ids_file.write_text("\n".join(sorted(heldout)[:2]) + "\n")
    assert cli_main(["compare", *arguments, "--only-ids", str(ids_file)]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert sum(p["pairs"][0]["scored_both"] for p in result["domains"].values()) == 2


def test_help_says_what_goes_in_and_what_comes_out(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["distill", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    needles = ("SCORED_OUT", "MODEL_DIR", "held out", "distilled.json", "--max-train")
    needles += ("--group-key", "source_text", "url_host", "own group", "training_ids.txt")
    for needle in needles:
        assert needle in text


def test_bad_model_folders_are_refused_in_one_line(teacher, model_dir, tmp_path, capsys):
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "distilled.json").write_text((model_dir / "distilled.json").read_text())
    common = ["--domains", str(teacher["domains"]), "--scorer", "distilled"]
    out = tmp_path / "out"
    assert select_main()([*common, "--distilled-model", str(incomplete), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "incomplete distilled model folder" in lines[-1] and "weights.npy" in lines[-1]
    assert not (out / "scored").exists()  # refused before any task ran
    other = ["--domains", str(teacher["domains"]), "--scorer", "random", "--out", str(out)]
    assert select_main()([*other, "--distilled-model", str(model_dir)]) == 2
    assert "--distilled-model is for --scorer distilled" in capsys.readouterr().err
    compare = ["compare", f"a={teacher['ai']}", f"b={teacher['ai']}"]
    compare += ["--out", str(tmp_path / "compare")]
    assert cli_main([*compare, "--only-ids", str(tmp_path / "missing.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_documents_without_the_group_key_are_their_own_group(tmp_path, capsys):
    """Synthetic documents without source_text: the split by id, and the summary says so."""
    selection = write_scored_selection(tmp_path / "sel", synthetic_documents())
    assert cli_main(["distill", str(selection), "--out", str(tmp_path / "by_text")]) == 0
    printed = capsys.readouterr().out
    assert "note: 300 of 300 documents have no 'source_text': each is its own group" in printed
    record = read_record(tmp_path / "by_text")
    assert record["holdout"]["heldout_groups"] == record["holdout"]["documents"]
    by_id = ["distill", str(selection), "--out", str(tmp_path / "by_id"), "--group-key", "none"]
    assert cli_main(by_id) == 0
    assert "note:" not in capsys.readouterr().out
    same = [(tmp_path / name / "heldout_ids.txt").read_text() for name in ("by_text", "by_id")]
    assert same[0] == same[1]
    grouped_selection = write_scored_selection(tmp_path / "grouped", grouped(synthetic_documents()))
    assert cli_main(["distill", str(grouped_selection), "--out", str(tmp_path / "g")]) == 0
    assert "note:" not in capsys.readouterr().out
