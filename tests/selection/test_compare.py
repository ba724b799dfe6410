"""``ai-filters compare`` on real selection folders written with datatrove's writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datatrove.data import Document
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter

from ai_filters.cli import main
from ai_filters.selection.compare import DomainData, extremes, jaccard, snippet
from ai_filters.selection.folder import write_thresholds
from ai_filters.selection.thresholds import compute_thresholds

FLOAT64_REL = 1e-12  # exact rationals computed in float64: only last-bit rounding differs

FRACTION = 0.3
LONG_TEXT = "first line\nsecond | line\t" + "x" * 300


def _text(document_id: str) -> str:
    return LONG_TEXT if document_id == "web/9" else f"text of {document_id}"


def _tokens(document_id: str) -> int:
    """web/i and code/i: 10 * (i + 1) tokens; web/extra: 1000."""
    name = document_id.split("/")[1]
    return 1000 if name == "extra" else 10 * (int(name) + 1)


def make_selection(
    folder: Path, scores: dict[str, dict[str, float]], scorer: str | None, score_key: str
) -> Path:
    """A selection output folder as pipelines/smollm_select.py writes it: scored jsonl.gz,
    thresholds.json, selected parquet (score >= the domain's threshold) and scorer.json."""
    rows = []
    with JsonlWriter(str(folder / "scored"), output_filename="${domain}/${rank}.jsonl.gz") as out:
        for domain, domain_scores in scores.items():
            for document_id, score in domain_scores.items():
                metadata = {
                    "domain": domain,
                    score_key: score,
                    "ai_doc_tokens": _tokens(document_id),
                    "ai_loss_base": 2.0,
                }
                out.write(Document(text=_text(document_id), id=document_id, metadata=metadata))
                rows.append((domain, score, _tokens(document_id)))
    thresholds = compute_thresholds(rows, FRACTION)
    write_thresholds(thresholds, folder / "thresholds.json")
    selected = ParquetWriter(
        str(folder / "selected"), output_filename="data/${domain}/${rank}.parquet"
    )
    with selected as out:
        for domain, domain_scores in scores.items():
            for document_id, score in domain_scores.items():
                if score >= thresholds[domain].threshold:
                    metadata = {"domain": domain, score_key: score}
                    out.write(Document(text=_text(document_id), id=document_id, metadata=metadata))
    if scorer:
        described = {"scorer": scorer, "score_key": score_key, "fraction": FRACTION}
        (folder / "scorer.json").write_text(json.dumps(described))
    return folder


WEB = {f"web/{i}": float(i) for i in range(10)}
CODE = {f"code/{i}": float(i) for i in range(5)}
# rnd: web/1..9 with the scores of 6 and 9 swapped, web/0 missing, web/extra only here; no code
RND_WEB = {**{f"web/{i}": float(i) for i in range(1, 10)}, "web/6": 9.0, "web/9": 6.0}
RND_WEB["web/extra"] = -5.0


@pytest.fixture(scope="module")
def selections(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("selections")
    return {
        "ai": make_selection(
            root / "ai", {"web": WEB, "code": CODE}, "attention_influence", "attention_influence"
        ),
        "ppl": make_selection(
            root / "ppl",
            {d: {i: -s for i, s in v.items()} for d, v in {"web": WEB, "code": CODE}.items()},
            "perplexity",
            "perplexity_score",
        ),
        "rnd": make_selection(root / "rnd", {"web": RND_WEB}, "random", "random_score"),
        "legacy": make_selection(root / "legacy", {"web": WEB}, None, "attention_influence"),
    }


@pytest.fixture(scope="module")
def compared(selections, tmp_path_factory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("compare") / "out"
    argv = ["compare", str(selections["ai"]), str(selections["ppl"]), str(selections["rnd"])]
    argv += [f"copy={selections['ai']}", "--out", str(out)]
    assert main(argv) == 0
    return out, json.loads((out / "compare.json").read_text()), (out / "compare.md").read_text()


def _pair(result: dict, domain: str, a: str, b: str) -> dict:
    pairs = result["domains"][domain]["pairs"]
    return next(p for p in pairs if (p["a"], p["b"]) == (a, b))


def test_files_are_written(compared):
    out, result, markdown = compared
    for name in ("jaccard.png", "spearman.png", "tokens.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [s["name"] for s in result["selections"]] == [
        "attention_influence",
        "perplexity",
        "random",
        "copy",
    ]
    assert sorted(result["domains"]) == ["code", "web"]
    assert "## web" in markdown and "## code" in markdown


def test_identical_scorers_agree_fully(compared):
    _, result, _ = compared
    pair = _pair(result, "web", "attention_influence", "copy")
    assert pair["jaccard"] == 1.0
    assert pair["spearman"] == pytest.approx(1.0, rel=FLOAT64_REL)
    assert (pair["selected_a"], pair["scored_both"], pair["scored_only_a"]) == (3, 10, 0)


def test_reversed_scores_give_minus_one_and_no_overlap(compared):
    _, result, _ = compared
    for domain, selected in (("web", 3), ("code", 2)):
        pair = _pair(result, domain, "attention_influence", "perplexity")
        assert pair["spearman"] == pytest.approx(-1.0, rel=FLOAT64_REL)
        assert pair["jaccard"] == 0.0
        assert (pair["selected_a"], pair["selected_b"], pair["selected_both"]) == (
            selected,
        ) * 2 + (0,)


def test_partial_join_is_counted_and_hand_computed(compared):
    _, result, _ = compared
    pair = _pair(result, "web", "attention_influence", "random")
    # selected: ai {7, 8, 9}, rnd {6, 7, 8}: 2 shared of 4
    assert pair["jaccard"] == pytest.approx(2 / 4, rel=FLOAT64_REL)
    # joined web/1..9; one swap of ranks 6 and 9: rho = 1 - 6 * (3² + 3²) / (9 * (81 - 1))
    assert (pair["scored_both"], pair["scored_only_a"], pair["scored_only_b"]) == (9, 1, 1)
    assert pair["spearman"] == pytest.approx(1 - 6 * 18 / (9 * 80), rel=FLOAT64_REL)
    code = _pair(result, "code", "attention_influence", "random")
    assert (code["scored_both"], code["scored_only_a"], code["scored_only_b"]) == (0, 5, 0)
    assert code["spearman"] is None and code["jaccard"] == 0.0


def test_token_lengths(compared):
    _, result, _ = compared
    ai = result["domains"]["web"]["lengths"]["attention_influence"]
    assert ai["all"]["mean_tokens"] == pytest.approx(55.0, rel=FLOAT64_REL)  # 10 * mean(1..10)
    # web/7..9: 80, 90, 100
    assert ai["selected"]["mean_tokens"] == pytest.approx(90.0, rel=FLOAT64_REL)
    assert ai["selected"]["median_tokens"] == pytest.approx(90.0, rel=FLOAT64_REL)
    assert ai["token_share_selected"] == pytest.approx(270 / 550, rel=FLOAT64_REL)
    ppl = result["domains"]["web"]["lengths"]["perplexity"]
    # web/0..2: 10, 20, 30
    assert ppl["selected"]["mean_tokens"] == pytest.approx(20.0, rel=FLOAT64_REL)
    rnd = result["domains"]["web"]["lengths"]["random"]
    assert rnd["all"]["tokens"] == sum(10 * (i + 1) for i in range(1, 10)) + 1000


def test_top_and_bottom_documents(compared):
    _, result, markdown = compared
    examples = result["domains"]["web"]["examples"]
    assert [row["id"] for row in examples["attention_influence"]["top"]] == [
        "web/9",
        "web/8",
        "web/7",
    ]
    assert [row["id"] for row in examples["attention_influence"]["bottom"]] == [
        "web/0",
        "web/1",
        "web/2",
    ]
    assert [row["id"] for row in examples["perplexity"]["top"]] == ["web/0", "web/1", "web/2"]
    assert examples["random"]["bottom"][0] == {
        "id": "web/extra",
        "score": -5.0,
        "tokens": 1000,
        "selected": False,
        "text": "text of web/extra",
    }
    top = examples["attention_influence"]["top"][0]
    assert top["text"] == snippet(LONG_TEXT) and "\n" not in top["text"]
    assert top["text"].startswith("first line\\nsecond | line\\tx")
    assert "first line\\nsecond \\| line" in markdown  # one table row, pipe escaped


def test_helpers_ties_and_empty_sets():
    data = DomainData(scores={"b": 1.0, "a": 1.0, "c": 0.0}, tokens={"a": 1, "b": 1, "c": 1})
    assert extremes(data, 2) == (["a", "b"], ["c", "a"])
    assert jaccard({"a", "b", "c"}, {"b", "c", "d"}) == pytest.approx(2 / 4, rel=FLOAT64_REL)
    assert jaccard(set(), set()) != jaccard(set(), set())  # NaN
    assert snippet("a" * 5, chars=3) == "aaa…"


def _error(argv: list[str], capsys) -> str:
    assert main(argv) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_missing_scorer_json_is_refused(selections, tmp_path, capsys):
    message = _error(
        ["compare", str(selections["legacy"]), str(selections["ai"]), "--out", str(tmp_path)],
        capsys,
    )
    assert "scorer.json" in message and "legacy" in message


def test_error_not_a_selection(selections, tmp_path, capsys):
    (tmp_path / "half" / "scored").mkdir(parents=True)
    message = _error(
        ["compare", str(selections["ai"]), str(tmp_path / "half"), "--out", str(tmp_path / "o")],
        capsys,
    )
    assert "is not a selection output" in message
    assert "scored/<domain>/*.jsonl.gz" in message and "thresholds.json" in message


def test_error_fewer_than_two(selections, tmp_path, capsys):
    message = _error(["compare", str(selections["ai"]), "--out", str(tmp_path / "o")], capsys)
    assert "at least two selections" in message


def test_error_duplicate_names(selections, tmp_path, capsys):
    argv = ["compare", f"x={selections['ai']}", f"x={selections['ppl']}", "--out", str(tmp_path)]
    assert "two selections are named 'x'" in _error(argv, capsys)
    argv = ["compare", str(selections["ai"]), str(selections["ai"]), "--out", str(tmp_path)]
    assert "NAME=FOLDER" in _error(argv, capsys)


def test_error_wrong_score_key(selections, tmp_path, capsys):
    folder = make_selection(tmp_path / "bad", {"web": WEB}, "perplexity", "attention_influence")
    (folder / "scorer.json").write_text(
        json.dumps({"scorer": "perplexity", "score_key": "nope", "fraction": 0.2})
    )
    argv = ["compare", str(folder), str(selections["ai"]), "--out", str(tmp_path / "o")]
    assert "no 'nope' score" in _error(argv, capsys)


def test_error_missing_folder(selections, tmp_path, capsys):
    argv = ["compare", str(selections["ai"]), str(tmp_path / "nowhere"), "--out", str(tmp_path)]
    assert "is not a folder" in _error(argv, capsys)


def test_help_explains_inputs_and_outputs(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = capsys.readouterr().out
    for expected in ("NAME=FOLDER", "Jaccard", "Spearman", "scorer.json", "compare.md", "tokens"):
        assert expected in text


def test_only_ids_selects_again_among_the_listed_documents(selections, tmp_path):
    """With --only-ids each selection is its top fraction of the listed documents, the
    thresholds from them alone: web/0..4 and code/0..2 hold none of the pipeline's picks (web/7-9,
    code/3-4), yet ceil(0.3 * 5) = 2 web and ceil(0.3 * 3) = 1 code documents are selected."""
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"{d}/{i}\n" for d, n in (("web", 5), ("code", 3)) for i in range(n)))
    out = tmp_path / "out"
    argv = ["compare", str(selections["ai"]), str(selections["ppl"]), "--out", str(out)]
    assert main([*argv, "--only-ids", str(ids)]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert result["only_ids"]["thresholds"] == {
        "attention_influence": {"code": 2.0, "web": 3.0},
        "perplexity": {"code": -0.0, "web": -1.0},
    }
    web = _pair(result, "web", "attention_influence", "perplexity")
    assert (web["selected_a"], web["selected_b"], web["selected_both"]) == (2, 2, 0)
    code = _pair(result, "code", "attention_influence", "perplexity")
    assert (code["selected_a"], code["selected_b"], code["scored_both"]) == (1, 1, 3)
    assert "| perplexity | -0 | -1 |" in (out / "compare.md").read_text()
