"""Keeping credentials out of what a run records.

Job scripts, datatrove's pickled executors (``executor.pik``, ``executor.json``) and the Slurm
launch scripts are written into the logging folder, often a shared bucket; dry runs print them.
Credentials reach the jobs through the environment instead (``HF_TOKEN``, the ``AWS_*``
variables: Slurm's ``--export=ALL``, Ray's workers, Jobs' secrets), so an option value that
ends up in such a file must hold none: :func:`check_no_secret` refuses it in one line.
"""

from __future__ import annotations

import os
import re

# the environment variables whose values are credentials
SECRET_ENV = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
# a Hugging Face user access token; a URL carrying a password (https://user:secret@host/...)
HF_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{20,}")
URL_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
MIN_SECRET_CHARS = 8  # shorter environment values are not searched for (too many false hits)


def secret_kind(text: str) -> str | None:
    """What kind of credential ``text`` holds (``None``: none): a Hugging Face token, a URL with
    a password, or the value of one of :data:`SECRET_ENV` as the environment holds it now."""
    if HF_TOKEN_PATTERN.search(text):
        return "a Hugging Face token"
    if URL_PASSWORD.search(text):
        return "a URL with a password"
    for name in SECRET_ENV:
        value = os.environ.get(name) or ""
        if len(value) >= MIN_SECRET_CHARS and value in text:
            return f"the value of {name}"
    return None


def check_no_secret(text: str, option: str) -> None:
    """``ValueError`` in one line, naming ``option`` and never quoting ``text``, if ``text``
    holds a credential (see :func:`secret_kind`)."""
    kind = secret_kind(text)
    if kind:
        raise ValueError(
            f"{option} holds {kind}, which would be written into job scripts and logs: pass "
            "credentials through the environment (HF_TOKEN, the AWS_* variables), never in an "
            "option"
        )
