"""The output folder's lock: taken and released, refused in one line while held, taken over
from a holder that no longer runs (a dead pid on this host, Slurm jobs that ended)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import replace

import pytest

from ai_filters.selection.run_lock import (
    LOCK_NAME,
    LockHolder,
    RunLock,
    RunLockHeld,
    process_start,
    stale_reason,
)
from tests.helpers.s3 import local_s3
from tests.helpers.slurm import require_slurm


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_holder(folder, holder: LockHolder) -> None:
    (folder / LOCK_NAME).write_text(holder.as_text())


def test_the_lock_is_held_inside_and_released_after(tmp_path):
    with RunLock(str(tmp_path), "select --out x") as lock:
        recorded = json.loads((tmp_path / LOCK_NAME).read_text())
        assert recorded["host"] == socket.gethostname() and recorded["command"] == "select --out x"
        assert recorded["pid"] == lock.holder.pid and recorded["since"].endswith("+00:00")
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_an_error_or_ctrl_c_releases_the_lock(tmp_path, error):
    with pytest.raises(error), RunLock(str(tmp_path), "select"):
        raise error()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_second_run_is_refused_in_one_line_naming_the_holder(tmp_path):
    with RunLock(str(tmp_path), "first --out x") as first:
        with pytest.raises(RunLockHeld) as refused:
            RunLock(str(tmp_path), "second").acquire()
        message = str(refused.value)
        assert "\n" not in message and message.startswith(f"{tmp_path} is in use by another run")
        holder = first.holder
        for part in (holder.host, f"pid {holder.pid}", holder.since, "first --out x"):
            assert part in message
        assert f"remove {tmp_path / LOCK_NAME} if you are sure" in message
    assert not (tmp_path / LOCK_NAME).exists()  # the refused run did not remove it


def test_a_dead_holder_on_this_host_is_taken_over(tmp_path, capsys):
    stale = replace(LockHolder.this_process("killed run"), pid=dead_pid(), process_start=None)
    write_holder(tmp_path, stale)
    assert stale_reason(stale) == "its process no longer exists"
    with RunLock(str(tmp_path), "rerun") as lock:
        assert LockHolder.from_text((tmp_path / LOCK_NAME).read_text(), "") == lock.holder
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"taking over {tmp_path / LOCK_NAME} from host ") and "\n" not in line
    assert line.endswith("its process no longer exists")
    assert list(tmp_path.iterdir()) == []  # nothing left aside


def test_a_reused_pid_does_not_keep_the_lock(tmp_path):
    """The pid runs, but it is another process than the one that took the lock."""
    me = LockHolder.this_process("old run")
    assert me.process_start == process_start(me.pid) is not None
    assert stale_reason(me) is None
    assert stale_reason(replace(me, process_start="1")) == "its process no longer exists"


def test_a_killed_holder_not_yet_reaped_does_not_keep_the_lock():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    while (process_start(process.pid) is not None) and not _zombie(process.pid):
        pass
    holder = replace(LockHolder.this_process("run"), pid=process.pid)
    holder = replace(holder, process_start=process_start(process.pid))
    assert stale_reason(holder) == "its process no longer exists"
    process.wait()


def _zombie(pid: int) -> bool:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_holder_on_another_host_stays_held(tmp_path):
    other = replace(LockHolder.this_process("run"), host="elsewhere", pid=dead_pid())
    write_holder(tmp_path, other)
    with pytest.raises(RunLockHeld, match="host elsewhere"):
        RunLock(str(tmp_path), "rerun").acquire()


def test_a_lock_with_slurm_jobs_is_held_while_slurm_cannot_be_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no_slurm_here"))
    jobs = replace(LockHolder.this_process("run"), pid=dead_pid(), slurm_jobs=("41", "42"))
    assert stale_reason(jobs) is None


def test_a_lock_handed_to_slurm_jobs_is_held_until_they_end(tmp_path):
    """A real job on the one-node cluster: queued (held), the lock stays; cancelled, it is
    taken over."""
    require_slurm()
    job = subprocess.run(
        ["sbatch", "--parsable", "--hold", "--wrap", "true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        with RunLock(str(tmp_path), "launcher") as launcher:
            launcher.hand_to_jobs([job])
        assert LockHolder.from_text((tmp_path / LOCK_NAME).read_text(), "").slurm_jobs == (job,)
        with pytest.raises(RunLockHeld, match=f"squeue -j {job}"):
            RunLock(str(tmp_path), "second").acquire()
    finally:
        subprocess.run(["scancel", job], check=True)
    holder = LockHolder.from_text((tmp_path / LOCK_NAME).read_text(), "")
    deadline = 60
    while stale_reason(holder) is None and deadline:
        subprocess.run(["sleep", "1"])
        deadline -= 1
    assert stale_reason(holder) == "its Slurm jobs are no longer queued or running"
    with RunLock(str(tmp_path), "after the jobs"):
        pass


def test_a_released_lock_of_a_waiting_launcher_is_removed(tmp_path):
    with RunLock(str(tmp_path), "launcher --wait") as lock:
        lock.hand_to_jobs(["7"])
        lock.release()  # the jobs were waited for
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_malformed_lock_is_named(tmp_path):
    (tmp_path / LOCK_NAME).write_text("not json")
    with pytest.raises(ValueError, match=f"{tmp_path / LOCK_NAME} is not a run lock"):
        RunLock(str(tmp_path), "run").acquire()


@pytest.fixture(scope="module")
def s3_folder():
    """A folder in a bucket of a local S3 server."""
    with local_s3("locks"):
        yield "s3://locks/run"


def test_on_s3_the_lock_is_an_atomic_create(s3_folder):
    """A conditional put (``If-None-Match: *``): the second create fails on the server."""
    with RunLock(s3_folder, "first") as first:
        assert not RunLock(s3_folder, "second")._create()
        with pytest.raises(RunLockHeld, match="first"):
            RunLock(s3_folder, "second").acquire()
        assert first.data.exists(LOCK_NAME)
    assert not first.data.exists(LOCK_NAME)
    with RunLock(s3_folder, "third"):
        pass
