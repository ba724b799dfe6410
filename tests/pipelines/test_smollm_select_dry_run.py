"""``--dry-run``: every stage described, nothing read, written or run."""

from __future__ import annotations

from tests.helpers.pipelines import load_select_main


def test_dry_run_describes_the_stages_and_writes_nothing(tiny, tmp_path, capsys):
    _, heads = tiny
    out = tmp_path / "out"
    argv = ["--demo", "--out", str(out), "--heads", str(heads), "--tasks", "3", "--dry-run"]
    assert load_select_main()(argv) == 0
    printed = capsys.readouterr().out
    for stage in ("score", "thresholds", "select", "report"):
        assert f"stage {stage}:" in printed
    assert "stage score: 3 tasks, 1 at once" in printed
    assert "runs after 'select' succeeds" in printed
    assert not out.exists()  # no corpus, no records, no logs
