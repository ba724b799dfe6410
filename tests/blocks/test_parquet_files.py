"""The parquet writers on a full disk: one clear error, and nothing printed after it.

The full disk is real: the output files are links to ``/dev/full``, where every write fails
with ENOSPC, as on a filesystem that has run out of space. The documents carry many small
fields, so that each file's footer (a few hundred bytes per column) overflows the file's
write buffer: closing any file then writes to the disk and fails, as closing the files of a
task does once its disk is full.
"""

from __future__ import annotations

import errno
import gc
import sys
import tempfile
from pathlib import Path

import pytest
from datatrove.data import Document

from ai_filters.blocks import HubShardWriter, ScoreTableWriter
from ai_filters.blocks.staged import staging_path
from ai_filters.console import error_line

FIELDS = ("attention_influence", "ai_loss_base", "ai_loss_ref", "ai_n_tokens", "ai_doc_tokens")
MANY = tuple(f"field_{i:03d}" for i in range(400))
DOMAINS = ("web", "code", "math")


def document(domain: str, index: int) -> Document:
    metadata = {"domain": domain, "attention_influence": 0.5, **dict.fromkeys(MANY, 1.0)}
    return Document(text=f"text {index}", id=f"{domain}/{index}", metadata=metadata)


def full_disk(folder: Path, names: list[str]) -> Path:
    """``folder`` where each of ``names`` is written on a full disk: the staging file this
    process writes it under (the writers rename it to its name when whole) is a link to
    /dev/full."""
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Path(staging_path(str(folder / name))).symlink_to("/dev/full")
    return folder


@pytest.fixture
def unraisable(monkeypatch) -> list:
    """What Python reports as "Exception ignored in ...", collected instead of printed."""
    seen: list = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    return seen


def write_all(writer) -> tuple[int, str]:
    """Write two documents of each domain with ``writer``; the errno and the one-line message
    of the error that raises. Both are dropped on return: collecting them then (as when a
    failed task ends) closes whatever pyarrow writers they kept open."""
    with pytest.raises(OSError) as raised:
        with writer:
            for domain in DOMAINS:
                for index in range(2):
                    writer.write(document(domain, index), rank=0)
    return raised.value.errno, error_line(raised.value)


@pytest.mark.parametrize("batch_size", [1, 1000])  # batches spilled as they come, or at close
def test_hub_shards_on_a_full_disk_fail_once_and_leave_no_spill(
    tmp_path, monkeypatch, unraisable, batch_size
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = full_disk(tmp_path / "out", [f"data/{domain}/00000.parquet" for domain in DOMAINS])
    number, line = write_all(HubShardWriter(str(out), FIELDS, batch_size=batch_size))
    gc.collect()
    assert number == errno.ENOSPC
    assert line == f"no space left on device writing {out}/data/web/00000.parquet"
    assert unraisable == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_score_tables_on_a_full_disk_fail_once(tmp_path, unraisable):
    out = full_disk(tmp_path / "out", [f"{domain}/000_00000.parquet" for domain in DOMAINS])
    number, line = write_all(ScoreTableWriter(str(out), (*FIELDS, *MANY)))
    gc.collect()
    assert number == errno.ENOSPC
    assert line == f"no space left on device writing {out}/web/000_00000.parquet"
    assert unraisable == []
