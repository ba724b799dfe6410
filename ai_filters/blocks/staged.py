"""Writers whose files appear under their names only once complete.

datatrove's writers open every output file under its final name and write into it as the
documents come; a task killed in the middle (``SIGKILL``, a node lost, a time limit) leaves a
truncated file there, and a ``.jsonl.gz`` cut before its first block reads back as a whole,
empty file. Its retry rewrites it, but until then, or while two attempts of the same task run
at once (a requeued job beside a resubmitted one), anything reading the folder would take it
for complete.

:class:`StagedWrites` makes a writer open each file of a local output folder under a hidden
staging name of its own attempt, ``.<name>.<host>-<pid>.partial`` in the same folder (which no
reader's glob matches), and rename it to ``<name>`` when the writer closes it: a file under its
name is always whole, and of two attempts the last to finish replaces the other's whole file.
When the pipeline raises through the writer, its staging files are removed; when closing a
file fails (a full disk; the error names the final file), that file's: nothing is published.
A killed attempt leaves its staging file behind (hidden; safe to delete when no task of the
stage runs). Remote folders are written as datatrove does: an object store shows an upload
only once it is complete.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import IO

from datatrove.io import OutputFileManager
from datatrove.pipeline.writers import JsonlWriter
from fsspec.compression import compr
from fsspec.core import get_compression

STAGING_SUFFIX = ".partial"


def staging_path(final: str) -> str:
    """The staging path of the file ``final`` (local) for this process's attempt."""
    folder, _, name = final.rpartition("/")
    staged = f".{name}.{socket.gethostname()}-{os.getpid()}{STAGING_SUFFIX}"
    return f"{folder}/{staged}" if folder else staged


class _StagedFile:
    """An open staging file that :meth:`close` renames to its final path (or removes, when its
    manager no longer publishes or closing fails). An ``OSError`` of a write or the close
    names the final path (a full disk reads ``... writing <its name>``). Everything else is
    the open file's own."""

    def __init__(
        self, file: IO, raw: IO, staging: Path, final: Path, files: StagedOutputFiles
    ) -> None:
        self._file = file  # what the writer writes to (compressing, if the name says so)
        self._raw = raw  # the staging file itself, closed last
        self._staging = staging
        self._final = final
        self._files = files
        self._done = False

    def __getattr__(self, name: str):
        return getattr(self._file, name)

    def __enter__(self) -> _StagedFile:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def write(self, data) -> int:
        try:
            return self._file.write(data)
        except OSError as error:
            self._name(error)
            raise

    def close(self) -> None:
        """Close the file, then rename it to its final path, once (a parquet writer closes its
        sink and datatrove closes it again)."""
        if self._done:
            self._file.close()
            return
        self._done = True
        try:
            self._file.close()  # a compressing file does not close the file it wraps
            self._raw.close()
        except OSError as error:
            self._staging.unlink(missing_ok=True)
            self._name(error)
            raise
        if self._files.publish:
            os.replace(self._staging, self._final)
        else:
            self._staging.unlink(missing_ok=True)

    def _name(self, error: OSError) -> None:
        if error.filename is None:
            error.filename = str(self._final)


class StagedOutputFiles(OutputFileManager):
    """datatrove's output file manager for a local folder and a binary ``mode``, opening each
    file under its staging path (:func:`staging_path`), compressed as its final name says
    (``compression="infer"``); ``publish`` False makes closing remove the staging files."""

    def __init__(self, folder, mode: str = "wb", compression: str | None = "infer") -> None:
        super().__init__(folder, mode, compression)
        self.publish = True

    def get_file(self, filename: str) -> IO:
        if filename not in self._output_files:
            staging = staging_path(filename)
            raw = self.fs.open(staging, mode=self.mode)
            compression = get_compression(filename, self.compression)  # from the final name
            file = compr[compression](raw, mode=self.mode[0]) if compression else raw
            self._output_files[filename] = _StagedFile(
                file,
                raw,
                Path(self.fs.resolve_paths(staging)),
                Path(self.fs.resolve_paths(filename)),
                self,
            )
        return self._output_files[filename]


class StagedWrites:
    """A mixin for datatrove disk writers (put it first among the bases): on a local output
    folder and in a binary mode (the pipeline's writers), files are written under staging
    names and renamed when complete (see the module docstring); an exception raised through
    the writer publishes nothing."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        manager = self.output_mg
        if self.output_folder.is_local() and "b" in manager.mode:
            self.output_mg = StagedOutputFiles(
                self.output_folder, manager.mode, manager.compression
            )

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        if exc_type is not None and isinstance(self.output_mg, StagedOutputFiles):
            self.output_mg.publish = False
        super().__exit__(exc_type, exc_val, exc_tb)


class StagedJsonlWriter(StagedWrites, JsonlWriter):
    """datatrove's ``JsonlWriter`` with :class:`StagedWrites`: the pipeline's scored and
    skipped documents."""
