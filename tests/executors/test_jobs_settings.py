"""The Hugging Face Jobs options become one validated :class:`JobsSettings`; a bad flavor,
timeout or a missing requirement is one line, and only folders the Jobs reach are taken."""

from __future__ import annotations

import argparse

import pytest
from huggingface_hub import JobHardware

from ai_filters.executors.jobs_settings import JobsSettings, check_shared_folder, job_flavors
from ai_filters.executors.options import add_executor_options, executor_settings_from_options
from ai_filters.executors.settings import ExecutorSettings

REQUIREMENT = ["--job-requirements", "ai-filters @ git+https://github.com/ORG/ai-filters"]


def settings(*argv: str) -> ExecutorSettings:
    parser = argparse.ArgumentParser()
    add_executor_options(parser)
    return executor_settings_from_options(vars(parser.parse_args(list(argv))))


def test_the_jobs_options_become_the_jobs_settings():
    argv = ["--executor", "hf-jobs", "--gpu-flavor", "a10g-small", "--timeout", "2h", *REQUIREMENT]
    built = settings(*argv, "--flavor", "cpu-upgrade", "--one-task-flavor", "cpu-xl")
    assert built.jobs == JobsSettings(
        flavor="cpu-upgrade",
        gpu_flavor="a10g-small",
        one_task_flavor="cpu-xl",
        timeout="2h",
        requirements=("ai-filters @ git+https://github.com/ORG/ai-filters",),
    )
    assert not built.is_local


def test_each_stage_gets_its_flavor():
    jobs = JobsSettings(flavor="cpu-upgrade", gpu_flavor="a10g-small", one_task_flavor="cpu-xl")
    assert jobs.flavor_for(one_task=False, model=True) == "a10g-small"
    assert jobs.flavor_for(one_task=False, model=False) == "cpu-upgrade"
    assert jobs.flavor_for(one_task=True, model=False) == "cpu-xl"
    assert (
        JobsSettings(flavor="cpu-upgrade").flavor_for(one_task=False, model=True) == "cpu-upgrade"
    )


def test_the_flavors_are_huggingface_hubs():
    assert set(job_flavors()) == {flavor.value for flavor in JobHardware}
    assert {"cpu-basic", "a10g-small"} <= set(job_flavors())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--flavor", "a10g-huge"], "flavor 'a10g-huge' is not a Jobs hardware name"),
        (["--one-task-flavor", "gpu"], "one_task_flavor 'gpu' is not a Jobs hardware name"),
        (["--gpu-flavor", "a100"], "gpu_flavor 'a100' is not a Jobs hardware name"),
        (["--timeout", "2 hours"], "timeout must be seconds or a number with s, m, h or d"),
        (["--timeout", "-5"], "timeout must be seconds"),
    ],
)
def test_a_bad_jobs_value_is_rejected_in_one_line(argv, message):
    with pytest.raises(ValueError, match=message) as error:
        settings("--executor", "hf-jobs", *REQUIREMENT, *argv)
    assert "\n" not in str(error.value)


def test_hf_jobs_needs_the_requirement_that_installs_the_project():
    with pytest.raises(ValueError, match="needs --job-requirements"):
        settings("--executor", "hf-jobs")
    assert settings("--executor", "local").jobs.requirements == ()  # only Jobs need it


@pytest.mark.parametrize("url", ["hf://buckets/org/b/run", "hf://datasets/org/d/run", "s3://b/r"])
def test_folders_the_jobs_reach_are_taken(url):
    check_shared_folder(url, "--out")


@pytest.mark.parametrize("url", ["/tmp/out", "out", "file:///tmp/out", "hf://org/model/run"])
def test_other_folders_are_refused_in_one_line(url):
    with pytest.raises(ValueError, match=f"--out {url} is not reachable from Hugging Face Jobs"):
        check_shared_folder(url, "--out")
