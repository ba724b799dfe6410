"""The Hugging Face Jobs options (``executor="hf-jobs"``): :class:`JobsSettings`, and which
folders the Jobs and the launching machine both reach (:func:`check_shared_folder`).

No token is held here: datatrove's Jobs executor takes it from the environment (``HF_TOKEN``
or the saved login, through ``huggingface_hub.get_token``) when it launches, hands it to each
Job as a secret, and leaves it out of the files it writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from huggingface_hub import JobHardware

from ai_filters.executors.secrets import check_no_secret

# the folder URLs a Job and the launching machine both read and write
SHARED_PREFIXES = ("hf://buckets/", "hf://datasets/", "s3://")
# a Job's time limit as huggingface_hub takes it: seconds, or a number with s, m, h or d
_TIMEOUT = re.compile(r"\d+(\.\d+)?[smhd]?")


def job_flavors() -> tuple[str, ...]:
    """The Jobs hardware names the installed huggingface_hub knows (``JobHardware``)."""
    return tuple(flavor.value for flavor in JobHardware)


def check_shared_folder(url: str, option: str) -> None:
    """``ValueError`` in one line unless ``url`` is a folder the Jobs reach too (an
    ``hf://buckets/``, ``hf://datasets/`` or ``s3://`` URL); ``option`` names what to change."""
    if not url.startswith(SHARED_PREFIXES):
        raise ValueError(
            f"{option} {url} is not reachable from Hugging Face Jobs: with --executor hf-jobs "
            f"give a folder URL starting with {', '.join(SHARED_PREFIXES)}"
        )


@dataclass(frozen=True)
class JobsSettings:
    """How each stage runs on Hugging Face Jobs (used with ``executor="hf-jobs"``).

    ``flavor``: the hardware of the parallel-stage Jobs; ``gpu_flavor``: that of the stages
    with a model (scoring; ``None``: ``flavor``), e.g. ``a10g-small``; ``one_task_flavor``: that
    of the one-task stages (thresholds, report, merges); all names of huggingface_hub's
    ``JobHardware``. ``timeout``: each Job's time limit
    (seconds, or e.g. ``"30m"``, ``"24h"``). ``requirements``: the pip requirements that
    install this project in each Job's uv environment (e.g. ``"ai-filters @ git+https://..."``;
    datatrove is added at the version running here; one holding a credential, such as
    ``git+https://user:token@host/...``, is refused: it would be in every Job's command).
    """

    flavor: str = "cpu-basic"
    gpu_flavor: str | None = None
    one_task_flavor: str = "cpu-basic"
    timeout: str = "24h"
    requirements: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("flavor", "gpu_flavor", "one_task_flavor"):
            value = getattr(self, name)
            if value not in job_flavors() and not (name == "gpu_flavor" and value is None):
                raise ValueError(
                    f"{name} '{getattr(self, name)}' is not a Jobs hardware name; choose one of "
                    f"{', '.join(job_flavors())}"
                )
        if not _TIMEOUT.fullmatch(self.timeout):
            raise ValueError(
                f"timeout must be seconds or a number with s, m, h or d, got {self.timeout!r}"
            )
        for requirement in self.requirements:
            check_no_secret(requirement, "requirements")

    def flavor_for(self, one_task: bool, model: bool) -> str:
        """The flavor of a stage: one-task, with a model (scoring), or another parallel one."""
        if one_task:
            return self.one_task_flavor
        return (self.gpu_flavor or self.flavor) if model else self.flavor

    def check_complete(self) -> None:
        """``ValueError`` in one line when the Jobs could not import this project."""
        if not self.requirements:
            raise ValueError(
                "executor 'hf-jobs' needs --job-requirements: the pip requirement(s) that install "
                "ai-filters in each Job, e.g. 'ai-filters @ git+https://github.com/ORG/ai-filters'"
            )
