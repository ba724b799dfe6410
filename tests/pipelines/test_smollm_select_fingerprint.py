"""What the selection pipeline records in ``OUT/run.json`` (its fingerprint): the options that
change results are in it, those that change only speed are not."""

from __future__ import annotations

import pytest

from tests.helpers.pipelines import load_select_module


@pytest.fixture(scope="module")
def fingerprint(tiny, tmp_path_factory):
    """The fingerprint of the pipeline's command line ``extra`` on the tiny model (a domains
    file that is only hashed, never read as a corpus)."""
    module = load_select_module()
    _, heads = tiny
    domains = tmp_path_factory.mktemp("domains") / "domains.yaml"
    domains.write_text("web:\n  path: /data/web\n")
    base = ["--out", "unused", "--domains", str(domains), "--heads", str(heads)]
    base += ["--model", str(heads.parent / "model")]

    def of(*extra: str) -> dict[str, str]:
        args = module.build_parser().parse_args([*base, *extra])
        return module.run_fingerprint(args, module.get_scorer(args.scorer))

    return of


@pytest.mark.parametrize(
    ("extra", "changed"),
    [
        (["--fraction", "0.3"], "--fraction"),
        (["--tasks", "3"], "--tasks"),
        (["--max-tokens", "64"], "--max-tokens"),
        (["--windows"], "--windows"),
        (["--dtype", "bfloat16"], "--dtype"),
        (["--device", "cpu"], "--dtype"),  # the CPU's default precision, fp32
        (["--scorer", "zero_ablation"], "--scorer"),
    ],
)
def test_an_option_that_changes_results_changes_the_fingerprint(fingerprint, extra, changed):
    first, other = fingerprint(), fingerprint(*extra)
    assert [name for name in first if first[name] != other.get(name)] == [changed]


@pytest.mark.parametrize(
    "extra",
    [
        ["--docs-per-batch", "8"],
        ["--batch-tokens", "256"],
        ["--no-packing"],
        ["--workers", "2"],
        ["--seed", "5"],  # the random scorer's only
    ],
)
def test_an_option_that_changes_only_speed_leaves_it(fingerprint, extra):
    assert fingerprint(*extra) == fingerprint()


def test_the_domains_files_content_is_in_it(fingerprint, tmp_path):
    other = tmp_path / "domains.yaml"
    other.write_text("web:\n  path: /data/web2\n")
    assert fingerprint("--domains", str(other))["--domains"] != fingerprint()["--domains"]


def test_the_random_scorers_seed_is_in_it(fingerprint):
    assert fingerprint("--scorer", "random", "--seed", "1")["--seed"] == "1"
    assert "--max-tokens" not in fingerprint("--scorer", "random")
