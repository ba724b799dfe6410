"""Fixtures of the distillation tests: a scored selection a text model can learn, and a model
distilled from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_filters.distill import TrainingSettings, distill, save
from tests.helpers.distill import synthetic_documents, write_scored_selection


@pytest.fixture(scope="module")
def selection(tmp_path_factory) -> Path:
    return write_scored_selection(tmp_path_factory.mktemp("selection"), synthetic_documents())


@pytest.fixture(scope="module")
def model_dir(selection, tmp_path_factory) -> Path:
    return save(distill(selection, TrainingSettings()), tmp_path_factory.mktemp("model"))
