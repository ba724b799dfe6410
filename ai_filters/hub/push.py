"""Push a Hub folder (made by :func:`ai_filters.hub.folder.build_hub_folder`) to a dataset
repository: ``create_repo``, ``create_branch`` (with ``--branch``) and ``upload_folder``.

Tokens only travel through :class:`huggingface_hub.HfApi`; nothing here writes or prints one,
and a folder that holds the token is refused before anything reaches the Hub.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from ai_filters.hub.card import TOKEN_ENV

T = TypeVar("T")


class HubPushError(RuntimeError):
    """The Hub refused the push or stayed unavailable; the message says what to do next."""


# huggingface_hub >= 1.20 uploads a folder in a pipeline that commits big folders in several
# parts, resumes when the same call is run again, and retries HTTP 408, 429 and 5xx itself (its
# preupload, Xet and commit requests): upload_folder is called once. create_repo and
# create_branch are single requests it does not retry: those are retried here.


def _status(error: HfHubHTTPError) -> int | None:
    return getattr(error.response, "status_code", None)


def _busy(status: int | None) -> bool:
    return status is not None and (status == 429 or status >= 500)


def _retry_delay(error: HfHubHTTPError, attempt: int, backoff_seconds: float) -> float:
    """Exponential backoff, or the server's ``Retry-After`` when that is longer."""
    delay = backoff_seconds * 2**attempt
    retry_after = getattr(error.response, "headers", {}).get("retry-after", "")
    return max(delay, float(retry_after)) if retry_after.isdigit() else delay


def _refused(error: HfHubHTTPError, what: str, repo_id: str, token_env: str) -> HubPushError:
    return HubPushError(
        f"the Hub refused the credentials (HTTP {_status(error)}) to {what} {repo_id}: set "
        f"{token_env} to a token with write access to that namespace "
        "(https://huggingface.co/settings/tokens) or run `hf auth login`"
    )


def _unavailable(status: int | None, what: str, repo_id: str, tries: str) -> HubPushError:
    return HubPushError(
        f"could not {what} {repo_id}: HTTP {status} {tries}; the Hub is busy or down, run the "
        "same command later (uploads resume)"
    )


def call_with_retries(
    call: Callable[[], T],
    what: str,
    repo_id: str,
    max_retries: int,
    backoff_seconds: float,
    sleep: Callable[[float], None],
    token_env: str,
) -> T:
    """Run ``call``; retry HTTP 429 and 5xx up to ``max_retries`` times with exponential backoff.

    HTTP 401/403 and exhausted retries raise :class:`HubPushError`; other errors propagate.
    """
    attempt = 0
    while True:
        try:
            return call()
        except HfHubHTTPError as error:
            status = _status(error)
            if status in (401, 403):
                raise _refused(error, what, repo_id, token_env) from error
            if not _busy(status):
                raise
            if attempt == max_retries:
                raise _unavailable(
                    status, what, repo_id, f"after {max_retries + 1} tries"
                ) from error
            delay = _retry_delay(error, attempt, backoff_seconds)
            attempt += 1
            print(
                f"HTTP {status} trying to {what} {repo_id}; retry {attempt}/{max_retries} "
                f"in {delay:.0f} s",
                file=sys.stderr,
            )
            sleep(delay)


def _check_folder(folder: Path, token: str | None) -> None:
    if not (folder / "README.md").is_file():
        raise FileNotFoundError(f"{folder} has no README.md: build it with `ai-filters hub-folder`")
    if token is None:
        return
    for path in folder.rglob("*"):
        if path.suffix in (".md", ".json", ".txt", ".yaml", ".yml") and token in path.read_text():
            raise HubPushError(f"{path} contains the access token; remove it before pushing")


def push_folder(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    max_retries: int = 5,
    backoff_seconds: float = 2.0,
    token_env: str = TOKEN_ENV,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Upload ``folder`` to the dataset repo ``repo_id`` and return the commit URL.

    Creates the repo (``private`` only applies to a new one) and the branch ``revision`` if
    missing, retrying a busy Hub (429, 5xx; :func:`call_with_retries`), then uploads the folder
    with ``upload_folder``, which retries by itself, commits a big folder in parts and resumes
    when re-run. ``token=None`` uses the cached login. Refused credentials (401, 403) and a Hub
    that stays busy raise :class:`HubPushError`; ``token_env`` is the variable named in
    authentication errors; ``sleep`` is injectable for tests.
    """
    folder = Path(folder)
    _check_folder(folder, token)
    api = HfApi(token=token)

    def retry(what: str, call: Callable[[], T]) -> T:
        return call_with_retries(
            call, what, repo_id, max_retries, backoff_seconds, sleep, token_env
        )

    retry(
        "create",
        lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True),
    )
    if revision:
        retry(
            f"create branch {revision} of",
            lambda: api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True),
        )
    try:
        commit = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(folder),
            revision=revision,
            commit_message="Upload data selection (ai-filters)",
        )
    except HfHubHTTPError as error:
        status = _status(error)
        if status in (401, 403):
            raise _refused(error, "upload to", repo_id, token_env) from error
        if _busy(status):
            raise _unavailable(
                status, "upload to", repo_id, "after huggingface_hub's retries"
            ) from error
        raise
    return commit.commit_url


def hf_upload_command(
    folder: str, repo_id: str, private: bool, revision: str | None, token_env: str
) -> str:
    """The ``hf upload`` command line that does what :func:`push_folder` does."""
    parts = ["hf", "upload", repo_id, folder, "--repo-type", "dataset"]
    parts += ["--private"] if private else []
    parts += ["--revision", revision] if revision else []
    command = shlex.join(parts)
    return command if token_env == TOKEN_ENV else f'{TOKEN_ENV}="${token_env}" {command}'
