"""The Hub folder of any scorer's selection: flat columns, the ``scores`` config and the card's
recipe for another fraction, on shards written by the pipeline's own writers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pytest
from datatrove.data import Document
from huggingface_hub import DatasetCard

from ai_filters.blocks import HubShardWriter, ScoreTableWriter
from ai_filters.blocks.registry import SCORERS
from ai_filters.hub.folder import build_hub_folder
from ai_filters.selection.folder import ScorerRecord, SelectionFolder
from ai_filters.selection.thresholds import DomainThreshold, wanted_count

DOCS_PER_DOMAIN = {"web": 10, "math": 7}
FRACTION = 0.2


def make_selection(out: Path, scorer_name: str) -> dict[str, set[str]]:
    """A finished selection by ``scorer_name`` written with the pipeline's writers; returns the
    selected ids per domain."""
    scorer = SCORERS[scorer_name]
    tables = ScoreTableWriter(str(out / "scores"), scorer.table_fields)
    selected = HubShardWriter(str(out / "selected"), scorer.table_fields)
    rejected = HubShardWriter(str(out / "rejected"), scorer.table_fields)
    thresholds, chosen = {}, {}
    for domain, count in DOCS_PER_DOMAIN.items():
        scores = [((index * 3) % count) / count for index in range(count)]
        k = wanted_count(count, FRACTION)
        threshold = sorted(scores, reverse=True)[k - 1]
        chosen[domain] = set()
        for index, score in enumerate(scores):
            metadata = {"domain": domain, "source": f"{domain}.jsonl"}
            metadata |= {
                name: score if name == scorer.score_key else 2.0 for name in scorer.table_fields
            }
            metadata |= {
                name: 50 + index for name in scorer.table_fields if name.endswith("_tokens")
            }
            doc = Document(text=f"{domain} text {index}", id=f"{domain}-{index}", metadata=metadata)
            tables.write(doc, rank=0)
            (selected if score >= threshold else rejected).write(doc, rank=0)
            if score >= threshold:
                chosen[domain].add(doc.id)
        thresholds[domain] = DomainThreshold(
            threshold, FRACTION, count, 50 * count, len(chosen[domain]), 0, 0
        )
    for writer in (tables, selected, rejected):
        writer.close()
    folder = SelectionFolder(out)
    folder.write_thresholds(thresholds)
    folder.write_scorer(ScorerRecord(scorer_name, scorer.score_key, FRACTION))
    (out / "report.json").write_text(json.dumps({"domains": {}, "statistics": {}}))
    return chosen


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def card_recipe(hub: Path) -> str:
    """The card's code for selecting another fraction, reading the local folder."""
    text = DatasetCard.load(hub / "README.md").text
    section = text.split("## Scores of every document", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return code.replace('"ORG/NAME"', repr(str(hub)))


@pytest.mark.parametrize("scorer_name", ["random", "perplexity"])
def test_any_scorers_folder_publishes_flat_columns_and_every_score(scorer_name, tmp_path, cache):
    chosen = make_selection(tmp_path / "out", scorer_name)
    hub = build_hub_folder(tmp_path / "out", tmp_path / "hub")
    scorer = SCORERS[scorer_name]
    scores = datasets.load_dataset(str(hub), "scores", split="train")
    assert len(scores) == sum(DOCS_PER_DOMAIN.values())
    assert list(scores.features) == ["id", "domain", *scorer.table_fields]
    web = datasets.load_dataset(str(hub), "web", split="train")
    assert list(web.features) == ["text", "id", "domain", *scorer.table_fields, "source"]
    assert set(web["id"]) == chosen["web"]
    card = DatasetCard.load(hub / "README.md")
    assert scorer.card_text in card.text
    assert f"![{scorer.score_key} per domain]" in card.text
    assert f"`{scorer.score_key}`" in card.text and "This is a control selection" in card.text
    assert "config_name: scores" in (hub / "README.md").read_text()


def test_the_cards_recipe_reproduces_the_selection_and_selects_other_fractions(tmp_path, cache):
    chosen = make_selection(tmp_path / "out", "random")
    hub = build_hub_folder(tmp_path / "out", tmp_path / "hub")
    recipe = card_recipe(hub)
    assert "fraction = 0.2  #" in recipe
    found: dict = {}
    exec(recipe, found)  # the card's own code, as a user runs it
    assert found["ids"] == set().union(*chosen.values())
    exec(recipe.replace("fraction = 0.2", "fraction = 0.5"), found)
    assert len(found["ids"]) == 5 + 4  # ceil(0.5 x 10) and ceil(0.5 x 7), no ties here
    assert found["ids"] > set().union(*chosen.values())
