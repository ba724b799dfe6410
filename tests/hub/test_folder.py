"""The Hub folder (data layout, card, histogram), built from a finished selection folder."""

from __future__ import annotations

import pytest
from huggingface_hub import DatasetCard

from ai_filters.blocks.registry import SCORERS
from ai_filters.hub import folder as hub
from ai_filters.hub.card import HISTOGRAM
from ai_filters.hub.folder import build_hub_folder
from tests.helpers.hub import DOMAINS, RANDOM_CONTROL, TOKEN, make_out


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
    assert (folder / HISTOGRAM).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
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
    assert (folder / HISTOGRAM).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
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
