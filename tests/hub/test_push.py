"""The push (``create_repo``, ``create_branch``, ``upload_folder``), offline with patched HfApi
calls: retries, refused credentials, and the token that never leaves the environment."""

from __future__ import annotations

import argparse
import shutil

import pytest
from huggingface_hub.errors import HfHubHTTPError

from ai_filters.cli.hub import add_parsers as add_hub_commands
from ai_filters.hub.push import HubPushError, push_folder
from tests.helpers.hub import TOKEN, make_out


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
