"""Broken input: every document is scored or skipped with a reason; the run never dies halfway."""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_heads_file
from tiny_models import save_tiny_model, tiny_model_and_heads

from ai_filters.blocks import DomainsReader, RandomScorer
from ai_filters.cli import main as cli_main
from ai_filters.documents import DocumentReadError, read_documents
from ai_filters.models import ModelLoadError, load_model
from ai_filters.score_files import score_file, skipped_path
from ai_filters.scoring import ScoringConfig, ScoringEngine

HEADS = [(18, 6), (20, 6), (17, 3)]


@pytest.fixture(scope="module")
def engine(embedded) -> ScoringEngine:
    return ScoringEngine(embedded, HEADS, ScoringConfig(max_tokens=32))


def line(document: dict) -> bytes:
    return (json.dumps(document) + "\n").encode()


@pytest.fixture
def broken_inputs(tmp_path) -> list[Path]:
    """One file of every kind of bad record, a truncated .jsonl.gz and a corrupt parquet."""
    records = [
        line({"id": "empty", "text": "", "domain": "web"}),
        line({"id": "spaces", "text": "   \n\t ", "domain": "web"}),
        line({"id": "one-token", "text": "Hello", "domain": "web"}),
        line({"id": "huge", "text": "The quick brown fox. " * 250_000, "domain": "web"}),
        b'{"id": "bad-utf8", "text": "caf\xe9 \xff", "domain": "web"}\n',
        line({"id": "surrogate", "text": "lone \ud800 surrogate text here", "domain": "web"}),
        line({"id": "controls", "text": "NUL \x00 bell \x07 escape \x1b end", "domain": "code"}),
        line({"id": "number", "text": 42, "domain": "code"}),
        line({"id": "no-text", "domain": "code"}),
        line({"id": "no-domain", "text": "A document without any domain at all."}),
        line({"id": "dup", "text": "First copy of a duplicated id.", "domain": "math"}),
        line({"id": "dup", "text": "Second copy of a duplicated id.", "domain": "math"}),
        b"{not json at all\n",
        b"[1, 2, 3]\n",
    ]
    plain = tmp_path / "bad.jsonl"
    plain.write_bytes(b"".join(records))
    good = b"".join(
        line({"id": f"gz-{i}", "text": f"Sentence number {i} is here.", "domain": "math"})
        for i in range(50)
    )
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(gzip.compress(good)[:-40])
    corrupt = tmp_path / "corrupt.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "p", "text": "ok"}] * 10), corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    return [plain, truncated, corrupt]


def test_every_broken_record_is_scored_or_skipped_with_its_reason(engine, broken_inputs, tmp_path):
    output = tmp_path / "out.jsonl"
    summary = score_file(engine, broken_inputs, output)
    scored = list(read_documents(output))
    skipped = list(read_documents(skipped_path(output)))
    reasons = {d["id"]: d["metadata"]["skip_reason"] for d in skipped}
    assert reasons["empty"] == reasons["one-token"] == "too_short"
    assert reasons["number"] == reasons["no-text"] == "missing_text"
    assert reasons["surrogate"] == "untokenizable_text"
    assert (
        reasons["bad.jsonl/4"]
        == reasons["bad.jsonl/12"]
        == reasons["bad.jsonl/13"]
        == ("unreadable")
    )
    unreadable = {
        d["id"]: d["metadata"] for d in skipped if d["metadata"]["skip_reason"] == "unreadable"
    }
    assert unreadable["bad.jsonl/4"]["source_line"] == 5
    assert "invalid UTF-8" in unreadable["bad.jsonl/4"]["skip_detail"]
    assert any(i.startswith("truncated.jsonl.gz/") for i in unreadable)
    assert "corrupt.parquet/file" in unreadable
    assert next(d for d in skipped if d["id"] == "surrogate")["metadata"]["text_repaired"]
    scored_ids = Counter(d["id"] for d in scored)
    assert scored_ids["dup"] == 2 and {"controls", "no-domain", "huge"} <= set(scored_ids)
    assert all(math.isfinite(d["metadata"]["attention_influence"]) for d in scored)
    huge = next(d for d in scored if d["id"] == "huge")
    assert huge["metadata"]["ai_n_tokens"] == 32 and huge["metadata"]["ai_doc_tokens"] > 1_000_000
    gz_scored = [d for d in scored if d["id"].startswith("gz-")]
    assert 0 < len(gz_scored) < 50  # the lines before the truncation point are kept
    for domain, read in summary.read.items():  # read = scored + skipped, per domain
        assert read == summary.scored[domain] + summary.skipped_in(domain)
    assert sum(summary.read.values()) == len(scored) + len(skipped)


def test_strict_mode_stops_with_file_and_line(engine, broken_inputs, tmp_path):
    with pytest.raises(DocumentReadError, match=r"bad\.jsonl:5: invalid UTF-8"):
        score_file(engine, broken_inputs, tmp_path / "out.jsonl", strict=True)
    assert not (tmp_path / "out.jsonl").exists()


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


def test_non_finite_loss_is_skipped_never_scored(engine, embedded):
    """A NaN in the forward pass (as an fp16 overflow makes) gives a reason, not a score."""
    last = embedded.model.base_model.layers[-1]
    handle = last.register_forward_hook(lambda module, args, output: output * float("nan"))
    try:
        (score,) = engine.score_texts(["A perfectly ordinary sentence about rivers."])
    finally:
        handle.remove()
    assert score.skip_reason == "non_finite_loss" and score.attention_influence is None


# ------------------------------------------------ the selection pipeline: every record counted
SELECT_SCRIPT = Path(__file__).resolve().parents[1] / "pipelines" / "smollm_select.py"
GOOD = [
    "Rivers carry sediment downstream, and where the current slows the sand settles.",
    "The mitochondria turn glucose and oxygen into ATP through a chain of reactions.",
    "A prime number has exactly two divisors: one and the number itself.",
    "def add(a, b):\n    return a + b\n",
]
CORPUS = {  # domain -> raw lines of its one .jsonl file; every line is one record read
    "web": [
        *(line({"id": f"web-{i}", "text": text}) for i, text in enumerate(GOOD)),
        line({"id": "web-empty", "text": ""}),
        line({"id": "web-no-text"}),
        line({"id": "web-null", "text": None}),
        line({"id": "web-number", "text": 42}),
        line({"id": "web-surrogate", "text": "lone \ud800 surrogate in a sentence"}),
        b"{not json at all\n",
    ],
    "code": [
        *(line({"id": f"code-{i}", "text": text}) for i, text in enumerate(GOOD)),
        line({"id": "code-spaces", "text": "   "}),
        b'{"id": "code-latin1", "text": "caf\xe9"}\n',
    ],
}


def load_select_main():
    """``main`` of pipelines/smollm_select.py, imported from its file."""
    spec = importlib.util.spec_from_file_location("smollm_select", SELECT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny Llama with the embedded tokenizer (fast to score) and its heads file."""
    return tiny_model_and_heads(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def select_inputs(tiny, tmp_path_factory) -> dict[str, Path]:
    """The corpus above, its domains file, and the tiny model's folder and heads file."""
    folder = tmp_path_factory.mktemp("select_inputs")
    specs = {}
    for domain, lines in CORPUS.items():
        (folder / domain).mkdir()
        (folder / domain / "part.jsonl").write_bytes(b"".join(lines))
        specs[domain] = {"reader": "jsonl", "path": str(folder / domain)}
    (folder / "domains.yaml").write_text(json.dumps(specs))  # JSON is valid YAML
    _, heads = tiny
    return {"domains": folder / "domains.yaml", "heads": heads, "model": heads.parent / "model"}


def select_args(inputs: dict[str, Path], out: Path, **changes: str) -> list[str]:
    options = {
        "--out": str(out),
        "--domains": str(inputs["domains"]),
        "--heads": str(inputs["heads"]),
        "--model": str(inputs["model"]),
        "--max-tokens": "32",
        "--tasks": "1",
        "--batch-size": "8",
        **changes,
    }
    return [item for option, value in options.items() for item in (option, value)]


def console_log_follows_stderr() -> None:
    """After an in-process pipeline run, datatrove's console log still writes to the stderr of
    its last task (here a test's captured stream, closed later): send it to the current one."""
    from loguru import logger

    logger.remove()
    logger.add(lambda message: sys.stderr.write(message))


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
    for domain, lines in CORPUS.items():
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
def error_line_of(stderr: str, prog: str) -> str:
    """The single error line ``prog`` printed; it must be the last line of stderr."""
    lines = stderr.strip().splitlines()
    errors = [text for text in lines if text.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, stderr[-3000:]
    assert lines[-1] == errors[0] and "Traceback" not in stderr
    return errors[0]


def other_shape_heads(path: Path) -> Path:
    """A heads file made for a 30-layer, 9-head model (the embedded one), not the tiny one."""
    from ai_filters.heads import RetrievalHeads

    RetrievalHeads(
        model="smollm2-135m",
        model_fingerprint="sha256:" + "0" * 64,
        num_layers=30,
        num_heads=9,
        num_kv_heads=3,
        scores=[[0.0] * 9 for _ in range(30)],
        selected=[[18, 6]],
    ).save(path)
    return path


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
    from ai_filters.heads import HeadsFileError

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


def test_pipeline_reader_keeps_every_record_of_broken_files(broken_inputs):
    """The pipeline's reader on the broken files above: nothing dropped, nothing fatal."""
    plain, truncated, corrupt = broken_inputs
    folders = {}
    for domain, path in (("plain", plain), ("gz", truncated), ("parquet", corrupt)):
        folders[domain] = path.parent / domain
        folders[domain].mkdir()
        shutil.copy(path, folders[domain] / path.name)
    reader = DomainsReader(
        {
            d: {"reader": "parquet" if d == "parquet" else "jsonl", "path": str(f)}
            for d, f in folders.items()
        }
    )
    documents = list(reader.run())
    by_domain = Counter(d.metadata["domain"] for d in documents)
    read = {key.removeprefix("read_"): stat.total for key, stat in reader.stats.stats.items()}
    assert read == by_domain and by_domain["plain"] == 14  # every line of bad.jsonl
    unreadable = [d for d in documents if d.metadata.get("skip_reason") == "unreadable"]
    assert {d.metadata["source_file"].rsplit("/", 1)[1] for d in unreadable} == {
        "bad.jsonl",
        "truncated.jsonl.gz",
        "corrupt.parquet",
    }
    assert 0 < by_domain["gz"] - 1 < 50  # the lines before the truncation, then one record
    assert by_domain["parquet"] == 1
    texts = {d.id: d.text for d in documents}
    assert texts["surrogate"] == "lone \ud800 surrogate text here"  # orjson would drop it
    assert texts["number"] == 42 and texts["no-text"] is None and texts["empty"] == ""
    scorer = RandomScorer()  # any scorer: an unreadable record keeps its reason
    reasons = {d.metadata["skip_reason"] for d in unreadable}
    assert all(scorer.filter(d) == (False, "unreadable") for d in unreadable) and reasons == {
        "unreadable"
    }


def test_pipeline_reader_lets_connection_errors_fail_the_task(broken_inputs, monkeypatch):
    """A network failure is not broken input: the task fails, and a rerun retries the file."""
    reader = DomainsReader({"web": {"reader": "jsonl", "path": str(broken_inputs[0].parent)}})

    def reset_connection(*args, **kwargs):
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(reader.readers["web"].data_folder, "open", reset_connection)
    with pytest.raises(ConnectionResetError):
        list(reader.run())


# ---------------------------------------------------------------- safety: code and pickles
def test_pickle_weights_load_only_with_the_flag(tmp_path):
    folder = save_tiny_model(tmp_path / "pickled", safetensors=False)
    assert (folder / "pytorch_model.bin").is_file()
    assert not list(folder.glob("*.safetensors"))
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        load_model(str(folder), device="cpu")
    assert load_model(str(folder), device="cpu", allow_pickle=True).num_layers == 4


REMOTE_CODE = """
from pathlib import Path

from transformers import LlamaForCausalLM

Path("{witness}").touch()


class WitnessLlama(LlamaForCausalLM):
    pass
"""


def test_remote_code_runs_only_with_the_flag(tmp_path):
    """A model folder that ships its own Python: without the flag the code never runs."""
    folder = save_tiny_model(tmp_path / "remote")
    witness = tmp_path / "code-ran"
    (folder / "modeling_witness.py").write_text(REMOTE_CODE.format(witness=witness))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_witness.WitnessLlama"}
    (folder / "config.json").write_text(json.dumps(config))
    try:
        load_model(str(folder), device="cpu")
    except (ModelLoadError, ValueError):
        pass  # refusing to load is as good as loading the built-in Llama
    assert not witness.exists()
    loaded = load_model(str(folder), device="cpu", trust_remote_code=True)
    assert witness.exists() and type(loaded.model).__name__ == "WitnessLlama"
