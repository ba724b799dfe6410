"""The Hub tests' fixtures: one published folder per module, and HfApi calls patched offline."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from ai_filters.hub.folder import build_hub_folder
from tests.helpers.hub import make_out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hub")
    out = make_out(root / "out")
    folder = build_hub_folder(out, root / "hub", license="odc-by", repo_id="my-org/ai-demo")
    return out, folder


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
