"""The Hub folder (data layout, card, histogram) and the push, offline with patched HfApi calls."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard, HfApi
from huggingface_hub.errors import HfHubHTTPError

from ai_filters.blocks.registry import SCORERS
from ai_filters.cli.hub import add_parsers as add_hub_commands
from ai_filters.hub import folder as hub
from ai_filters.hub.folder import HubPushError, build_hub_folder, push_folder

RANDOM_CONTROL = {"scorer": "random", "score_key": "random_score", "fraction": 0.2}
METHOD_RECORD = {
    "scorer": "attention_influence",
    "score_key": "attention_influence",
    "fraction": 0.2,
}
TOKEN = "hf_" + "S3cr3tT0kenValueForTests" * 2
# domain -> (rows per selected shard, rejected rows, extra metadata field of the domain)
DOMAINS = {"web": ([3, 2], 12, None), "code": ([2], 6, "repo")}


def _rows(
    domain: str,
    count: int,
    start: int,
    score: float,
    extra: str | None,
    score_key: str = "attention_influence",
) -> list[dict]:
    rows = []
    for index in range(start, start + count):
        metadata = {
            "domain": domain,
            "file_path": f"/home/someone/corpus/{domain}/00000.jsonl.gz",
            score_key: score + 0.01 * index,
            "ai_doc_tokens": 100 + index,
        }
        if score_key == "attention_influence":  # the model scorers' losses
            metadata |= {"ai_loss_base": 2.0, "ai_loss_ref": 2.5, "ai_n_tokens": 100 + index}
        if extra:
            metadata[extra] = f"{extra}-{index}"
        rows.append(
            {"text": f"{domain} document {index}", "id": f"{domain}/{index}", "metadata": metadata}
        )
    return rows


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _table(rows: list[dict], score_key: str) -> list[dict]:
    """Score-table rows (id, domain, the scorer's fields) of documents with nested metadata."""
    scorer = next(entry for entry in SCORERS.values() if entry.score_key == score_key)
    return [
        {"id": row["id"], "domain": row["metadata"]["domain"]}
        | {name: row["metadata"][name] for name in scorer.table_fields}
        for row in rows
    ]


def make_out(out: Path, scorer: dict | None = None) -> Path:
    """A selection output folder as pipelines/smollm_select.py leaves it, for DOMAINS, with
    shards in the older layout (a nested ``metadata`` struct) and score tables.

    Without ``scorer``, the method's folder (its heads.json); with ``scorer`` (a scorer.json
    record of a control), that control's folder: its score field in the metadata, and no
    heads.json.
    """
    score_key = scorer["score_key"] if scorer else "attention_influence"
    thresholds, report = {}, {"domains": {}, "statistics": {}}
    for domain, (shards, rejected, extra) in DOMAINS.items():
        start, scored = 0, []
        for rank, count in enumerate(shards):
            rows = _rows(domain, count, start, 0.5, extra, score_key)
            _write(out / "selected" / "data" / domain / f"{rank:05d}.parquet", rows)
            scored += rows
            start += count
        rows = _rows(domain, rejected, 100, -1.5, extra, score_key)  # below 0.5
        _write(out / "rejected" / "data" / domain / "00000.parquet", rows)
        _write(out / "scores" / domain / "00000.parquet", _table(scored + rows, score_key))
        selected = sum(shards)
        thresholds[domain] = {
            "threshold": 0.5,
            "fraction": 0.2,
            "documents": selected + rejected,
            "tokens": 1000 * (selected + rejected),
            "documents_selected": selected,
            "tokens_selected": 1500 * selected,
            "tied_extra": 0,
        }
        report["domains"][domain] = {"read": selected + rejected + 1, "skipped": 1}
        report["statistics"][domain] = {
            "documents": selected + rejected,
            "mean_tokens": 110.0,
            "score_mean": 0.2,
            "score_p20": 0.1,
            "score_median": 0.2,
            "score_p80": 0.5,
            "loss_base_mean": 2.0,
            "spearman_score_loss": -0.5,
            "spearman_score_tokens": 0.4,
            "ppl_overlap": 0.25,
            "selected_mean_tokens": 150.0,
        }
    heads = {
        "model": "smollm2-135m",
        "model_fingerprint": "sha256:feedbeef",
        "num_layers": 30,
        "num_heads": 9,
        "num_kv_heads": 3,
        "scores": [[0.0] * 9] * 30,
        "selected": [[18, 6], [17, 3]],
        "settings": {"num_probes": 800, "max_tokens": 4096, "top_fraction": 0.05, "seed": 0},
    }
    records = {"thresholds": thresholds, "report": report}
    records |= {"scorer": scorer} if scorer else {"scorer": METHOD_RECORD, "heads": heads}
    for name, content in records.items():
        (out / f"{name}.json").write_text(json.dumps(content))
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hub")
    out = make_out(root / "out")
    folder = build_hub_folder(out, root / "hub", license="odc-by", repo_id="my-org/ai-demo")
    return out, folder


def test_folder_layout_and_histogram(built):
    _, folder = built
    files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    assert files == [
        "README.md",
        "data/code/train-00000-of-00001.parquet",
        "data/web/train-00000-of-00002.parquet",
        "data/web/train-00001-of-00002.parquet",
        "figures/score_histogram.png",
        "scores/code/train-00000-of-00001.parquet",
        "scores/web/train-00000-of-00001.parquet",
    ]
    assert (folder / hub.HISTOGRAM).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {path.name for path in folder.parent.iterdir()} == {"out", "hub"}  # no staging left


def test_folder_loads_with_datasets(built, tmp_path):
    from datasets import load_dataset

    _, folder = built
    everything = load_dataset(str(folder), split="train", cache_dir=str(tmp_path))
    assert len(everything) == 7
    # flat columns; the schemas of both domains are merged; the local file path is dropped
    assert list(everything.features) == [
        "text",
        "id",
        "domain",
        "attention_influence",
        "ai_loss_base",
        "ai_loss_ref",
        "ai_n_tokens",
        "ai_doc_tokens",
        "repo",
    ]
    for domain, (shards, _, _) in DOMAINS.items():
        subset = load_dataset(str(folder), domain, split="train", cache_dir=str(tmp_path))
        assert len(subset) == sum(shards)
        assert set(subset["domain"]) == {domain}


def test_card_yaml_and_body(built):
    _, folder = built
    card = DatasetCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "odc-by"
    assert data["task_categories"] == ["text-generation"]
    assert data["size_categories"] == ["n<1K"]
    configs = {config["config_name"]: config["data_files"] for config in data["configs"]}
    assert configs["web"] == [{"split": "train", "path": "data/web/*.parquet"}]
    assert configs["default"] == [{"split": "train", "path": "data/*/*.parquet"}]
    assert configs["scores"] == [{"split": "train", "path": "scores/*/*.parquet"}]
    body = card.text
    # web: read 18, skipped 1, scored 17, selected 5 (29.4 %), tokens 17,000 -> 7,500 (44.1 %)
    assert "| web | 18 | 1 | 17 | 5 | 29.4% | 17,000 | 7,500 | 44.1% | 0.5000 | 0 |" in body
    assert "| **all** | 27 | 2 | 25 | 7 | 28.0% | 25,000 | 10,500 | 42.0% | - | - |" in body
    assert "![attention_influence per domain](figures/score_histogram.png)" in body
    assert "sha256:feedbeef" in body and "(18, 6), (17, 3)" in body
    assert "`num_probes=800`" in body
    assert 'load_dataset("my-org/ai-demo", "code", split="train")' in body
    assert "random-subset control" in body
    assert "AttentionInfluence: Adopting Attention Head Influence for Weak-to-Strong" in body
    assert "Hua, Kai and Wu, Steven and Zhang, Ge and Shen, Ke" in body
    assert "ai-filters push" in body and "--demo" not in body


def test_control_folder_is_published_with_its_own_score(tmp_path):
    """A folder made by ``--scorer random``: no heads, its score is ``random_score``."""
    out = make_out(tmp_path / "out", scorer=RANDOM_CONTROL)
    folder = build_hub_folder(out, tmp_path / "hub", repo_id="my-org/random-control")
    card = DatasetCard.load(folder / "README.md")
    body = card.text
    assert card.data.to_dict()["pretty_name"] == "random-control (random selection)"
    assert (
        SCORERS["random"].card_text in body and SCORERS["attention_influence"].card_text not in body
    )
    assert "`random_score` (the score, uniform in [0, 1)" in body
    assert "--scorer random" in body
    assert "retrieval heads masked" not in body and "weights fingerprint" not in body
    # the histogram is drawn from random_score, the score tables' score
    assert (folder / hub.HISTOGRAM).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![random_score per domain](figures/score_histogram.png)" in body
    scores = hub.read_scores(hub.load_selection(out))
    selected = {domain: len(parts["selected"]) for domain, parts in scores.items()}
    assert selected == {domain: sum(shards) for domain, (shards, _, _) in DOMAINS.items()}


def test_failure_leaves_no_folder(tmp_path, monkeypatch):
    out = make_out(tmp_path / "out")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(hub, "plot_score_histograms", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_hub_folder(out, tmp_path / "hub")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]


def test_existing_folder_needs_overwrite(tmp_path):
    out = make_out(tmp_path / "out")
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "old.txt").write_text("old")
    with pytest.raises(FileExistsError):
        build_hub_folder(out, tmp_path / "hub")
    build_hub_folder(out, tmp_path / "hub", overwrite=True)
    assert not (tmp_path / "hub" / "old.txt").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hub", "out"]
    with pytest.raises(ValueError, match="would contain"):
        build_hub_folder(out, tmp_path, overwrite=True)


def test_incomplete_selection_is_refused(tmp_path):
    out = make_out(tmp_path / "out")
    (out / "selected" / "data" / "web" / "00001.parquet").unlink()
    with pytest.raises(ValueError, match="web: the selected shards hold 3 documents"):
        build_hub_folder(out, tmp_path / "hub")
    assert not (tmp_path / "hub").exists()


def test_token_never_reaches_the_card(tmp_path):
    out = make_out(tmp_path / "out")
    command = f"python pipelines/smollm_select.py --out out --token {TOKEN}"
    with pytest.raises(ValueError) as error:
        build_hub_folder(out, tmp_path / "hub", commands=[command])
    assert TOKEN not in str(error.value)
    assert not (tmp_path / "hub").exists()


def http_error(status: int) -> HfHubHTTPError:
    response = SimpleNamespace(status_code=status, headers={}, request=None)
    return HfHubHTTPError(f"{status} Client Error", response=response)


@pytest.fixture
def fake_hub(monkeypatch):
    """Patched HfApi calls: records each call; ``failures[name]`` are raised by that call first
    (an upload_folder failure stands for one that huggingface_hub's own retries did not end)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    state = SimpleNamespace(calls=[], failures={}, tokens=[])

    def record(name):
        def method(self, *args, **kwargs):
            state.calls.append((name, args, kwargs))
            state.tokens.append(self.token)
            if state.failures.get(name):
                raise http_error(state.failures[name].pop(0))
            return SimpleNamespace(commit_url="https://huggingface.co/datasets/o/n/commit/abc")

        return method

    for name in ("create_repo", "create_branch", "upload_folder"):
        monkeypatch.setattr(HfApi, name, record(name))
    return state


def test_push_calls(built, fake_hub):
    _, folder = built
    url = push_folder(folder, "my-org/ai-demo", private=True, revision="v1", token=TOKEN)
    assert url == "https://huggingface.co/datasets/o/n/commit/abc"
    names = [name for name, _, _ in fake_hub.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    _, args, kwargs = fake_hub.calls[0]
    assert args == ("my-org/ai-demo",)
    assert kwargs == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert fake_hub.calls[1][2] == {"branch": "v1", "repo_type": "dataset", "exist_ok": True}
    upload = fake_hub.calls[2][2]
    assert upload["repo_type"] == "dataset" and upload["revision"] == "v1"
    assert upload["folder_path"] == str(folder) and upload["repo_id"] == "my-org/ai-demo"
    assert fake_hub.tokens == [TOKEN] * 3


def test_push_retries_busy_hub(built, fake_hub):
    _, folder = built
    fake_hub.failures = {"create_repo": [429, 503]}
    sleeps: list[float] = []
    push_folder(folder, "my-org/ai-demo", sleep=sleeps.append, backoff_seconds=2.0)
    assert [name for name, _, _ in fake_hub.calls] == ["create_repo"] * 3 + ["upload_folder"]
    assert sleeps == [2.0, 4.0]
    assert fake_hub.calls[0][2]["private"] is False


def test_push_gives_up_after_retries(built, fake_hub):
    _, folder = built
    fake_hub.failures = {"create_repo": [500] * 4}
    sleeps: list[float] = []
    with pytest.raises(HubPushError, match="HTTP 500 after 4 tries"):
        push_folder(folder, "my-org/ai-demo", max_retries=3, sleep=sleeps.append)
    assert sleeps == [2.0, 4.0, 8.0]


def test_upload_is_not_retried_twice(built, fake_hub):
    """upload_folder retries a busy Hub itself: what still fails is reported, not retried."""
    _, folder = built
    fake_hub.failures = {"upload_folder": [503]}
    with pytest.raises(HubPushError) as error:
        push_folder(folder, "my-org/ai-demo", sleep=pytest.fail)
    assert "HTTP 503 after huggingface_hub's retries" in str(error.value)
    assert "run the same command later (uploads resume)" in str(error.value)
    assert [name for name, _, _ in fake_hub.calls] == ["create_repo", "upload_folder"]


def test_push_does_not_retry_client_errors(built, fake_hub):
    _, folder = built
    for name in ("create_repo", "upload_folder"):
        fake_hub.failures = {name: [404]}
        with pytest.raises(HfHubHTTPError):
            push_folder(folder, "my-org/ai-demo", sleep=pytest.fail)


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("call", ["create_repo", "upload_folder"])
def test_refused_credentials_are_not_retried_and_name_the_variable(built, fake_hub, status, call):
    _, folder = built
    fake_hub.failures = {call: [status]}
    with pytest.raises(HubPushError) as error:
        push_folder(folder, "my-org/ai-demo", token_env="MY_HF_TOKEN", sleep=pytest.fail)
    message = str(error.value)
    assert f"HTTP {status}" in message and "MY_HF_TOKEN" in message and "\n" not in message
    names = [name for name, _, _ in fake_hub.calls]
    assert names == ["create_repo", "upload_folder"][: names.index(call) + 1]
    assert names.count(call) == 1  # not retried


def test_push_refuses_a_folder_that_holds_the_token(built, fake_hub, tmp_path):
    _, built_folder = built
    folder = shutil.copytree(built_folder, tmp_path / "hub")
    (folder / "notes.txt").write_text(f"pushed with {TOKEN}\n")
    with pytest.raises(HubPushError, match="notes.txt contains the access token") as error:
        push_folder(folder, "my-org/ai-demo", token=TOKEN, sleep=pytest.fail)
    assert TOKEN not in str(error.value)
    assert fake_hub.calls == []  # refused before anything reaches the Hub


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_hub_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


def test_cli_push_unauthorized_names_the_variable(built, fake_hub, monkeypatch, capsys):
    _, folder = built
    monkeypatch.setenv("MY_HF_TOKEN", TOKEN)
    fake_hub.failures = {"upload_folder": [401]}
    with pytest.raises(HubPushError) as error:
        _cli(["push", str(folder), "--repo", "my-org/ai-demo", "--token-env", "MY_HF_TOKEN"])
    assert "MY_HF_TOKEN" in str(error.value) and "HTTP 401" in str(error.value)
    captured = capsys.readouterr()
    assert TOKEN not in str(error.value) + captured.out + captured.err
    assert f'HF_TOKEN="$MY_HF_TOKEN" hf upload my-org/ai-demo {folder}' in captured.out


def test_cli_hub_folder_then_push(tmp_path, fake_hub, monkeypatch, capsys):
    out = make_out(tmp_path / "out")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder = tmp_path / "hub"
    assert _cli(["hub-folder", str(out), "--hub-dir", str(folder), "--repo", "my-org/x"]) == 0
    assert _cli(["push", str(folder), "--repo", "my-org/x", "--private", "--revision", "b"]) == 0
    captured = capsys.readouterr()
    command = f"hf upload my-org/x {folder} --repo-type dataset --private --revision b"
    assert command in captured.out
    assert "https://huggingface.co/datasets/o/n/commit/abc" in captured.out
    assert TOKEN not in captured.out + captured.err
    assert all(TOKEN.encode() not in path.read_bytes() for path in folder.rglob("*.*"))
    assert fake_hub.tokens == [TOKEN] * 3


def test_cli_push_without_token_uses_cached_login(built, fake_hub, monkeypatch, capsys):
    _, folder = built
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert _cli(["push", str(folder), "--repo", "my-org/ai-demo"]) == 0
    assert "HF_TOKEN is not set" in capsys.readouterr().err
    assert fake_hub.tokens == [None, None]
