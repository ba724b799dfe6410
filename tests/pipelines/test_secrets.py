"""No secret of the environment lands in anything the tools write or print.

A Hugging Face token and S3 credentials are planted in the environment
(:mod:`tests.helpers.secrets`); then the selection pipeline runs, its tokenization,
``hub-folder``, ``push`` (HfApi patched), ``nanotron-config`` and ``nanotron-check``, every
executor's dry run, and a Slurm launch (``sbatch`` and ``sinfo`` replaced by scripts on PATH
that record what they are given), locally and to object storage (a moto server). Every file
written, datatrove's pickled executors, ``executor.json`` and Slurm scripts included, the
scripts ``sbatch`` received and every printed line are searched for the secrets, raw and
encoded. The Hugging Face Jobs launch has its own token test (``test_hf_jobs.py``).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType, SimpleNamespace

import dill
import pytest
from huggingface_hub import HfApi

from ai_filters.cli import main as ai_filters_main
from tests.helpers.pipelines import ROOT, console_log_follows_stderr, load_select_main
from tests.helpers.s3 import local_s3
from tests.helpers.secrets import SECRETS, leaks, plant

STAGES = ("score", "thresholds", "select", "report")
FAKE_SINFO = "#!/bin/sh\necho debug\n"
# records each script it is given (its last argument) and its other arguments, then answers as
# sbatch does
FAKE_SBATCH = """#!/bin/sh
n=$(ls "$RECORD" | wc -l)
for last; do :; done
cp "$last" "$RECORD/script_$n.sh"
echo "$@" > "$RECORD/args_$n.txt"
echo "Submitted batch job $((1000 + n))"
"""


def load_script(name: str) -> ModuleType:
    """``pipelines/<name>.py`` as a module, imported from its file."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "pipelines" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def planted(monkeypatch):
    plant(monkeypatch)
    yield
    console_log_follows_stderr()


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """``sinfo`` (one partition, 'debug') and a recording ``sbatch`` first on PATH; returns the
    folder where ``sbatch`` keeps the scripts and arguments it received."""
    bin_folder, record = tmp_path / "bin", tmp_path / "sbatch_record"
    bin_folder.mkdir()
    record.mkdir()
    for name, text in (("sinfo", FAKE_SINFO), ("sbatch", FAKE_SBATCH)):
        (bin_folder / name).write_text(text)
        (bin_folder / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("RECORD", str(record))
    return record


def test_the_search_finds_a_secret_in_each_form(tmp_path):
    token = SECRETS["HF_TOKEN"]
    (tmp_path / "a.pik").write_bytes(dill.dumps(SimpleNamespace(env={"HF_TOKEN": token})))
    encoded = base64.b64encode(f"Authorization: Bearer {token}".encode()).decode()
    (tmp_path / "b.json").write_text(json.dumps({"header": encoded}))
    secret = SECRETS["AWS_SECRET_ACCESS_KEY"]
    found = leaks([tmp_path], [f"export AWS_SECRET_ACCESS_KEY={secret}"])
    assert any("HF_TOKEN (raw)" in line and line.endswith("a.pik") for line in found)
    assert any("HF_TOKEN (base64" in line and line.endswith("b.json") for line in found)
    assert any("AWS_SECRET_ACCESS_KEY (raw) in printed text" in line for line in found)


def _select_args(tiny) -> list[str]:
    """A small demo run on the tiny model (as the fault suite's): 4 documents in each of 4
    domains, 2 tasks."""
    _, heads = tiny
    model = ["--heads", str(heads), "--model", str(heads.parent / "model")]
    return ["--demo", "--docs-per-domain", "4", "--max-tokens", "32", "--tasks", "2", *model]


def test_a_run_and_every_tool_after_it_leak_no_secret(
    tiny, planted, fake_slurm, tmp_path, capfd, monkeypatch
):
    out, hub, configs = tmp_path / "out", tmp_path / "hub", tmp_path / "configs"
    assert load_select_main()([*_select_args(tiny), "--out", str(out)]) == 0
    model = str(tiny[1].parent / "model")
    tokenize = load_script("tokenize_for_nanotron").main
    assert tokenize(["--out", str(out), "--tokenizer", model, "--tasks", "2", "--merge"]) == 0
    slurm = ["--executor", "slurm", "--partition", "debug", "--dry-run"]
    assert tokenize(["--out", str(out), "--tokenizer", model, *slurm]) == 0
    (tmp_path / "tokenized.s3").symlink_to(out / "tokenized")  # nanotron wants 's3' in paths
    tokenized = [str(tmp_path / "tokenized.s3" / name) for name in ("corpus", "selected")]
    config = configs / "run.yaml"
    nanotron = ["nanotron-config", "--model", "tiny", "--out", str(config)]
    nanotron += ["--corpus-tokenized", tokenized[0], "--selected-tokenized", tokenized[1]]
    assert ai_filters_main(nanotron) == 0
    ai_filters_main(["nanotron-check", str(config)])  # a tiny corpus may fail the epochs check
    assert ai_filters_main(["hub-folder", str(out), "--hub-dir", str(hub)]) == 0
    tokens = []

    def hub_call(self, *args, **kwargs):  # each HfApi call the push makes, offline
        tokens.append(self.token)
        return SimpleNamespace(commit_url="https://huggingface.co/datasets/org/name/commit/1")

    for name in ("create_repo", "create_branch", "upload_folder"):
        monkeypatch.setattr(HfApi, name, hub_call)
    assert ai_filters_main(["push", str(hub), "--repo", "org/name"]) == 0
    printed = capfd.readouterr()
    assert tokens and set(tokens) == {SECRETS["HF_TOKEN"]}  # the token went to the Hub alone
    assert (out / "logs" / "score" / "executor.json").is_file()
    assert (configs / "run.slurm").is_file() and (hub / "README.md").is_file()
    assert "#SBATCH --job-name=ai_filters_tokenize_corpus" in printed.out  # the dry run's script
    assert leaks([tmp_path], [printed.out, printed.err]) == []


@pytest.mark.parametrize(
    ("executor", "out"),
    [
        (["--executor", "local"], None),
        (["--executor", "slurm", "--partition", "debug"], None),
        (["--executor", "ray", "--ray-address", "local"], None),
        (
            ["--executor", "hf-jobs", "--job-requirements", "ai-filters"],
            "hf://buckets/org/b/run",
        ),
    ],
    ids=["local", "slurm", "ray", "hf-jobs"],
)
def test_dry_runs_print_no_secret(executor, out, tiny, planted, fake_slurm, tmp_path, capfd):
    out = out or str(tmp_path / "out")
    argv = [*_select_args(tiny), "--out", out, *executor, "--dry-run"]
    assert load_select_main()(argv) == 0
    printed = capfd.readouterr()
    assert "stage report" in printed.out
    assert leaks([tmp_path], [printed.out, printed.err]) == []


def test_a_slurm_launch_leaks_no_secret(tiny, planted, fake_slurm, tmp_path, capfd):
    out = tmp_path / "out"
    slurm = ["--executor", "slurm", "--partition", "debug"]
    assert load_select_main()([*_select_args(tiny), "--out", str(out), *slurm]) == 0
    printed = capfd.readouterr()
    assert "submitted: score=" in printed.out
    for stage in STAGES:
        for name in ("executor.pik", "executor.json", "launch_script.slurm"):
            assert (out / "logs" / stage / name).is_file(), (stage, name)
    assert len(list(fake_slurm.glob("script_*.sh"))) == 2 * len(STAGES)  # + merge_stats each
    assert leaks([tmp_path], [printed.out, printed.err]) == []


@pytest.fixture
def s3_bucket(planted):
    """A local S3 server with the bucket 'bucket', signed with the planted credentials; a boto
    client of it."""
    import boto3

    with local_s3("bucket", test_keys=False):
        yield boto3.client("s3")


def test_a_slurm_launch_to_object_storage_leaks_no_secret(
    tiny, s3_bucket, fake_slurm, tmp_path, capfd
):
    slurm = ["--executor", "slurm", "--partition", "debug"]
    assert load_select_main()([*_select_args(tiny), "--out", "s3://bucket/run", *slurm]) == 0
    printed = capfd.readouterr()
    copy = tmp_path / "bucket"
    for item in s3_bucket.list_objects_v2(Bucket="bucket")["Contents"]:
        (copy / item["Key"]).parent.mkdir(parents=True, exist_ok=True)
        s3_bucket.download_file("bucket", item["Key"], str(copy / item["Key"]))
    assert (copy / "run" / "logs" / "score" / "executor.pik").is_file()
    assert (copy / "run" / "logs" / "report" / "launch_script.slurm").is_file()
    assert leaks([tmp_path], [printed.out, printed.err]) == []


def test_a_token_in_an_option_is_refused_before_anything_is_written(
    tiny, planted, fake_slurm, tmp_path, capfd
):
    out = tmp_path / "out"
    leaky = ["--env-command", f"export HF_TOKEN={SECRETS['HF_TOKEN']}"]
    slurm = ["--executor", "slurm", "--partition", "debug", *leaky]
    assert load_select_main()([*_select_args(tiny), "--out", str(out), *slurm]) == 2
    nanotron = ["nanotron-config", "--model", "tiny", "--out", str(tmp_path / "run.yaml")]
    assert ai_filters_main([*nanotron, "--corpus-tokenized", str(tmp_path), *leaky]) == 2
    printed = capfd.readouterr()
    errors = printed.err.strip().splitlines()
    assert len(errors) == 2 and all("env_command holds a Hugging Face token" in e for e in errors)
    assert not out.exists() and not list(tmp_path.glob("run.*"))
    assert leaks([tmp_path], [printed.out, printed.err]) == []


def test_a_task_failing_in_a_hub_request_logs_no_token(planted, tmp_path, capfd):
    """The task's traceback passes through the request, whose headers hold the token: the task
    log keeps the traceback without the values of its variables."""
    domains = tmp_path / "domains.yaml"
    hub = {"reader": "jsonl", "path": "hf://datasets/some-org/some-dataset"}
    domains.write_text(json.dumps({"web": hub}))  # offline here: the request fails
    out = tmp_path / "out"
    argv = ["--domains", str(domains), "--scorer", "random", "--out", str(out), "--tasks", "1"]
    assert load_select_main()(argv) == 2
    printed = capfd.readouterr()
    log = (out / "logs" / "score" / "logs" / "task_00000.log").read_text()
    assert "OfflineModeIsEnabled" in log and "Traceback" in log
    assert leaks([tmp_path], [printed.out, printed.err]) == []


def test_a_password_in_a_domain_path_or_out_is_refused_before_anything_is_written(
    tiny, tmp_path, capfd
):
    """A domain's path and --out are recorded in every stage's executor files: a URL carrying
    a password is refused in one line that does not repeat it."""
    secret_url = "s3://reader:Sup3rSecretKey@bucket/web"
    domains = tmp_path / "domains.yaml"
    domains.write_text(json.dumps({"web": {"reader": "jsonl", "path": secret_url}}))
    out = tmp_path / "out"
    main = load_select_main()
    assert main(["--domains", str(domains), "--scorer", "random", "--out", str(out)]) == 2
    assert main([*_select_args(tiny), "--out", f"{secret_url}/out"]) == 2
    errors = capfd.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "Sup3rSecretKey" not in "\n".join(errors)
    assert "the path of domain 'web' holds a URL with a password" in errors[0]
    assert "--out holds a URL with a password" in errors[1]
    assert not out.exists()
