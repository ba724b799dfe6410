"""One run at a time in an output folder: the lock file ``OUT/run.lock``.

The pipeline scripts take the lock before they write anything into ``OUT`` and release it when
they end (also on an error or Ctrl-C). The file records its holder (:class:`LockHolder`: host,
pid, start time, command and, once submitted, Slurm job ids); a second run finds it and is
refused in one line (:class:`RunLockHeld`) naming the folder, the holder and what to do.

A holder that no longer runs does not hold the folder for ever. The lock is *stale*, and the
next run takes it over (saying so in one line on stderr), when:

- it names this host and its pid no longer exists (or is another process by now: the pid's
  start time, read from ``/proc``, differs from the recorded one), and no Slurm job of it is
  still queued or running;
- it names Slurm jobs (``--executor slurm``: the launcher exits after submitting and leaves
  the lock to its jobs) and ``squeue`` lists none of them any more.

A lock from another host without Slurm jobs cannot be checked from here: it stays held until
its run releases it or someone removes the file. Where ``squeue`` cannot be asked, a lock with
Slurm jobs stays held.

The file is created atomically where the storage offers it: in a local folder (a hard link of
a written file, which fails when the lock exists) and on S3 (a conditional put,
``If-None-Match: *``, through s3fs). On other remote stores (``hf://``, ...) the lock is a
check, then a write: two runs started within moments of each other may both pass.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from datatrove.io import DataFolder, get_datafolder

LOCK_NAME = "run.lock"


class RunLockHeld(RuntimeError):
    """Another run holds the output folder; the one-line message names it and what to do."""


@dataclass(frozen=True)
class LockHolder:
    """What ``run.lock`` records: who holds the folder, since when, and (Slurm) which jobs."""

    host: str
    pid: int
    since: str  # UTC, ISO 8601, seconds
    command: str
    process_start: str | None = None  # the pid's start time in clock ticks after boot
    slurm_jobs: tuple[str, ...] = ()

    @classmethod
    def this_process(cls, command: str) -> LockHolder:
        now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        pid = os.getpid()
        return cls(socket.gethostname(), pid, now, command, process_start(pid))

    def as_text(self) -> str:
        return json.dumps({**asdict(self), "slurm_jobs": list(self.slurm_jobs)}, indent=1) + "\n"

    @classmethod
    def from_text(cls, text: str, where: str) -> LockHolder:
        """A holder from the file's text; ``ValueError`` naming ``where`` when it is not one."""
        try:
            data = json.loads(text)
            return cls(**{**data, "slurm_jobs": tuple(map(str, data.get("slurm_jobs", ())))})
        except (json.JSONDecodeError, TypeError) as error:
            raise ValueError(
                f"{where} is not a run lock ({error}); remove it if no run uses the folder"
            ) from None

    def describe(self) -> str:
        """The holder in words, for the refusal."""
        who = f"host {self.host}, pid {self.pid}, since {self.since}"
        if self.slurm_jobs:
            who += f", Slurm jobs {','.join(self.slurm_jobs)}"
        return who


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first); ``None`` where
    there is no ``/proc`` or no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks after boot, from ``/proc``); ``None`` where
    there is no ``/proc`` or no such process."""
    fields = _proc_stat(pid)
    return fields[19] if fields else None  # field 22 of the line: starttime


def process_runs(holder: LockHolder) -> bool:
    """Whether the holder's process (on this host) still runs: it exists, is no zombie (ended,
    not yet reaped) and, where ``/proc`` tells, started when the holder's did."""
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    fields = _proc_stat(holder.pid)
    if fields is None or holder.process_start is None:
        return True
    return fields[0] != "Z" and fields[19] == holder.process_start


def slurm_jobs_alive(jobs: tuple[str, ...]) -> bool | None:
    """Whether any of ``jobs`` is still queued or running per ``squeue``; ``None`` when Slurm
    cannot be asked."""
    try:
        listing = subprocess.run(
            ["squeue", "-h", "-o", "%i", "-j", ",".join(jobs)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if "Invalid job id" in listing.stderr:  # purged from Slurm's memory: long finished
        return False
    if listing.returncode != 0:
        return None
    return bool(listing.stdout.split())


def stale_reason(holder: LockHolder) -> str | None:
    """Why ``holder`` no longer holds the folder, or ``None`` while it (may) still run."""
    if holder.slurm_jobs:
        alive = slurm_jobs_alive(holder.slurm_jobs)
        return "its Slurm jobs are no longer queued or running" if alive is False else None
    if holder.host != socket.gethostname() or process_runs(holder):
        return None
    return "its process no longer exists"


def _create_local(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` unless it exists: as a hard link of a finished file, so
    that it appears whole or not at all (``O_EXCL`` where the file system has no hard links)."""
    staging = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.write_text(text)
    try:
        os.link(staging, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        return True
    finally:
        staging.unlink()


class RunLock:
    """The lock of the output folder ``root`` (a local path or a URL), for ``command``.

    Use as a context manager: entering takes the lock (:class:`RunLockHeld` when another run
    holds it), leaving releases it (also on an error or Ctrl-C), unless :meth:`hand_to_jobs`
    gave it to Slurm jobs.
    """

    def __init__(self, root: str, command: str) -> None:
        self.root = root
        self.data: DataFolder = get_datafolder(root)
        self.holder = LockHolder.this_process(command)
        self.path = self.data.resolve_paths(LOCK_NAME)
        self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        if not self.holder.slurm_jobs:  # submitted jobs run on: the lock is theirs
            self.release()

    def acquire(self) -> None:
        """Take the lock, taking over a stale one (three tries: another run may take over the
        same stale lock at the same moment)."""
        for _ in range(3):
            if self._create():
                self.held = True
                return
            found = self._read()
            if found is None:  # released between the create and the read
                continue
            reason = stale_reason(found)
            if reason is None:
                raise RunLockHeld(self._refusal(found))
            if self._remove_stale(found):
                print(f"taking over {self.path} from {found.describe()}: {reason}", file=sys.stderr)
        raise RunLockHeld(f"{self.path} changed hands three times while this run tried to take it")

    def hand_to_jobs(self, job_ids: list[str]) -> None:
        """Record the submitted Slurm jobs: the lock stays held while any of them is queued or
        running, and leaving the context no longer releases it (the launcher exits after
        submitting; one that waits for the jobs calls :meth:`release` itself)."""
        if not job_ids:
            return
        self.holder = replace(self.holder, slurm_jobs=tuple(map(str, job_ids)))
        if self.data.is_local():
            staging = Path(f"{self.path}.{os.getpid()}.tmp")
            staging.write_text(self.holder.as_text())
            staging.replace(self.path)
        else:
            self.data.pipe_file(LOCK_NAME, self.holder.as_text().encode())

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if not self.held or os.getpid() != self.holder.pid:  # a forked task process: not ours
            return
        self.held = False
        found = self._read()
        if found is not None and (found.host, found.pid) == (self.holder.host, self.holder.pid):
            self.data.rm_file(LOCK_NAME)

    def _refusal(self, holder: LockHolder) -> str:
        if holder.slurm_jobs:
            wait = f"wait for its Slurm jobs (squeue -j {','.join(holder.slurm_jobs)})"
        else:
            wait = "wait for it to finish"
        return (
            f"{self.root} is in use by another run ({holder.describe()}: {holder.command}); "
            f"{wait}, or remove {self.path} if you are sure that run is gone"
        )

    def _create(self) -> bool:
        """Create the lock file with this holder, atomically where the storage allows;
        ``False`` when it exists."""
        text = self.holder.as_text()
        if self.data.is_local():
            return _create_local(Path(self.path), text)
        if "s3" in self.data.fs.protocol:
            try:
                self.data.pipe_file(LOCK_NAME, text.encode(), mode="create")
            except FileExistsError:
                return False
            return True
        if self.data.exists(LOCK_NAME):  # no atomic create on this store: check, then write
            return False
        self.data.pipe_file(LOCK_NAME, text.encode())
        return True

    def _read(self) -> LockHolder | None:
        try:
            with self.data.open(LOCK_NAME, "rt") as file:
                text = file.read()
        except FileNotFoundError:
            return None
        return LockHolder.from_text(text, self.path)

    def _remove_stale(self, stale: LockHolder) -> bool:
        """Remove the lock file if it still records ``stale``. Locally it is first renamed
        away (one run of several wins the rename) and put back if it changed hands."""
        if not self.data.is_local():
            self.data.rm_file(LOCK_NAME)
            return True
        aside = Path(f"{self.path}.stale.{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        if LockHolder.from_text(aside.read_text(), self.path) != stale:
            try:  # a fresh lock, taken in between: put it back unless yet another exists
                os.link(aside, self.path)
            except FileExistsError:
                pass
            aside.unlink()
            return False
        aside.unlink()
        return True
