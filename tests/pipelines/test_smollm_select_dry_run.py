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


def test_dry_run_takes_no_lock(tiny, tmp_path, capsys):
    """A run holds the folder: a dry run still describes the stages and leaves the lock."""
    from ai_filters.selection.run_lock import LOCK_NAME, RunLock

    _, heads = tiny
    argv = ["--demo", "--out", str(tmp_path), "--heads", str(heads), "--dry-run"]
    with RunLock(str(tmp_path), "a running selection"):
        assert load_select_main()(argv) == 0
        assert "stage score:" in capsys.readouterr().out
        assert "a running selection" in (tmp_path / LOCK_NAME).read_text()
