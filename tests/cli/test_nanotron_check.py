"""``ai-filters nanotron-check`` and the launch options of ``ai-filters nanotron-config``."""

from __future__ import annotations

from ai_filters.cli import main


def config_for(tmp_path, corpus, selected, tokens: int) -> str:
    out = tmp_path / "run.yaml"
    argv = ["nanotron-config", "--corpus-tokenized", str(corpus)]
    argv += ["--selected-tokenized", str(selected), "--out", str(out), "--model", "tiny"]
    argv += ["--tokens", str(tokens), "--global-batch", "4", "--seq-len", "99"]
    argv += ["--gpus-per-node", "1", "--partition", "hopper", "--time", "2-00:00:00"]
    argv += ["--qos", "high", "--account", "proj", "--checkpoints-path", str(tmp_path / "ck")]
    argv += ["--env-command", "source /fsx/nanotron-env/bin/activate"]
    assert main(argv) == 0
    return str(out)


def test_config_options_reach_the_launch_script(tokenized, tmp_path, capsys):
    corpus, selected = tokenized
    out = config_for(tmp_path, corpus, selected, tokens=20 * 4 * 99)
    script = (tmp_path / "run.slurm").read_text()
    for line in ("--partition=hopper", "--time=2-00:00:00", "--qos=high", "--account=proj"):
        assert f"#SBATCH {line}\n" in script
    assert "#SBATCH --requeue\n" in script
    assert "\nsource /fsx/nanotron-env/bin/activate\n" in script
    assert f"resume_checkpoint_path: {tmp_path / 'ck'}" in open(out).read()
    printed = capsys.readouterr().out
    assert f"a relaunch resumes from {tmp_path / 'ck'}/latest.txt" in printed


def test_check_prints_the_table_and_passes(tokenized, tmp_path, capsys):
    corpus, selected = tokenized
    out = config_for(tmp_path, corpus, selected, tokens=20 * 4 * 99)
    capsys.readouterr()
    assert main(["nanotron-check", out]) == 0
    printed = capsys.readouterr()
    assert printed.out.startswith(f"config: {out}\nrun: 20 steps x 4 sequences x 99 tokens")
    assert "| folder | files | tokens | samples | weight | samples read | epochs |" in printed.out
    assert f"| {selected} | 1 | 1,000 | 10 | 0.25 | 20 | 2 |" in printed.out
    assert printed.err == ""


def test_check_fails_with_one_line_per_problem(tokenized, tmp_path, capsys):
    corpus, selected = tokenized
    out = config_for(tmp_path, corpus, selected, tokens=200 * 4 * 99)
    capsys.readouterr()
    assert main(["nanotron-check", out, "--max-epochs", "10"]) == 2
    printed = capsys.readouterr()
    errors = printed.err.splitlines()
    assert errors == [
        f"ai-filters: error: {corpus} would be read 20 times (600 samples of 30), more than "
        "--max-epochs 10: train fewer steps or on more data",
        f"ai-filters: error: {selected} would be read 20 times (200 samples of 10), more than "
        "--max-epochs 10: train fewer steps or on more data",
    ]
    assert "failed: 2 problems" in printed.out


def test_check_of_a_broken_file_is_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("general: [unclosed\n")
    assert main(["nanotron-check", str(broken)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"ai-filters: error: {broken} is not YAML:")
    assert main(["nanotron-check", str(tmp_path / "missing.yaml")]) == 2
    assert "No such file or directory" in capsys.readouterr().err
    (tmp_path / "typo.yaml").write_text("general: {project: p}\nparalelism: {}\n")
    assert main(["nanotron-check", str(tmp_path / "typo.yaml")]) == 2
    assert "paralelism is not a field; did you mean parallelism?" in capsys.readouterr().err


def test_config_refuses_a_time_slurm_cannot_read(tokenized, tmp_path, capsys):
    corpus, _ = tokenized
    argv = ["nanotron-config", "--corpus-tokenized", str(corpus), "--out", str(tmp_path / "x.yaml")]
    assert main(argv + ["--model", "tiny", "--gpus-per-node", "1", "--time", "two days"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--time 'two days' is not a Slurm time" in line
    assert not (tmp_path / "x.yaml").exists()
