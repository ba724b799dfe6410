"""Fixtures of the block tests: the embedded model from the blocks' cache and a heads file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_filters.blocks.scorer_base import shared_model
from tests.helpers.blocks import HEADS
from tests.helpers.models import write_heads_file


@pytest.fixture(scope="module")
def loaded():
    """The embedded model from the blocks' own cache, so the pipelines below reuse it."""
    return shared_model("smollm2-135m", "cpu", "float32")


@pytest.fixture(scope="module")
def heads_file(loaded, tmp_path_factory) -> Path:
    return write_heads_file(loaded, HEADS, tmp_path_factory.mktemp("heads") / "heads.json")
