"""The registry of scorers: every entry is consistent and builds a block that writes its key."""

from __future__ import annotations

import pytest
from datatrove.data import Document

from ai_filters.blocks.registry import SCORERS, ScorerOptions, get_scorer
from ai_filters.engine.masking import MASK_MODES
from ai_filters.engine.scoring import ScoringConfig
from ai_filters.engine.settings import EngineSettings


@pytest.fixture(scope="module")
def distilled_model(tmp_path_factory) -> str:
    """A model folder of ``ai-filters distill``, trained on a small synthetic selection."""
    from ai_filters.distill import TrainingSettings, distill, save
    from tests.helpers.distill import synthetic_documents, write_scored_selection

    selection = write_scored_selection(tmp_path_factory.mktemp("selection"), synthetic_documents())
    return str(save(distill(selection, TrainingSettings()), tmp_path_factory.mktemp("model")))


@pytest.mark.parametrize("name", list(SCORERS))
def test_entry_builds_a_block_that_writes_its_score_key(name, tiny, request):
    entry = get_scorer(name)
    assert entry.name == name
    assert entry.mask_mode in (*MASK_MODES, None)
    assert (entry.mask_mode is not None) == entry.needs_heads  # a mask mode is for heads
    _, heads = tiny
    options = ScorerOptions(
        heads_path=str(heads) if entry.needs_heads else None,
        model=str(heads.parent / "model"),  # the tiny model: milliseconds per document
        engine_settings=EngineSettings(ScoringConfig(max_tokens=32)),
        distilled_model=request.getfixturevalue("distilled_model") if name == "distilled" else None,
    )
    block = entry.build(options)
    assert type(block).score_key == entry.score_key
    if entry.needs_heads:
        assert block.config.mask_mode == entry.mask_mode
    document = Document(text="Rivers carry sediment downstream to the sea.", id="doc")
    (scored,) = list(block([document]))
    assert isinstance(scored.metadata[entry.score_key], float)


@pytest.mark.parametrize("name", [name for name, entry in SCORERS.items() if entry.needs_heads])
def test_a_scorer_with_heads_needs_a_heads_file(name):
    with pytest.raises(ValueError, match="give a heads file"):
        SCORERS[name].build(ScorerOptions())


def test_unknown_scorer_names_the_choices():
    with pytest.raises(ValueError, match="unknown scorer 'nope'") as error:
        get_scorer("nope")
    assert all(name in str(error.value) for name in SCORERS)
