"""Option values that end up in job scripts and logs hold no credential."""

from __future__ import annotations

import pytest

from ai_filters.executors.jobs_settings import JobsSettings
from ai_filters.executors.secrets import secret_kind
from ai_filters.executors.settings import SlurmSettings
from ai_filters.nanotron.writer import LaunchSettings
from tests.helpers.secrets import SECRETS, plant

TOKEN = SECRETS["HF_TOKEN"]
AWS_SECRET = SECRETS["AWS_SECRET_ACCESS_KEY"]


@pytest.mark.parametrize(
    ("build", "option", "kind"),
    [
        (lambda: SlurmSettings(env_command=f"export HF_TOKEN={TOKEN}"), "env_command", "token"),
        (lambda: SlurmSettings(sbatch_args={"comment": TOKEN}), "sbatch_args", "token"),
        (
            lambda: SlurmSettings(env_command=f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}"),
            "env_command",
            "the value of AWS_SECRET_ACCESS_KEY",
        ),
        (
            lambda: JobsSettings(requirements=("x @ git+https://me:p4ssw0rd@github.com/o/x",)),
            "requirements",
            "a URL with a password",
        ),
        (lambda: LaunchSettings(env_command=f"HF_TOKEN={TOKEN} source a"), "env_command", "token"),
    ],
    ids=["slurm-env-command", "sbatch-args", "aws-secret", "jobs-requirement", "nanotron"],
)
def test_a_credential_in_an_option_is_refused_in_one_line(build, option, kind, monkeypatch):
    plant(monkeypatch)
    with pytest.raises(ValueError) as error:
        build()
    message = str(error.value)
    assert message.startswith(f"{option} holds") and kind in message and "\n" not in message
    assert TOKEN not in message and AWS_SECRET not in message and "p4ssw0rd" not in message


def test_ordinary_values_are_no_secret(monkeypatch):
    plant(monkeypatch)
    SlurmSettings(env_command="source /fsx/venv/bin/activate", sbatch_args={"account": "lm"})
    JobsSettings(requirements=("ai-filters @ git+https://github.com/ORG/ai-filters",))
    LaunchSettings(env_command="source /fsx/nanotron-env/bin/activate")
    assert secret_kind("s3://bucket/run hf://buckets/org/b https://host:8080/x") is None
