"""Staged writes: the pipeline's writers show a file under its name only once it is whole.

A task killed by ``SIGKILL`` runs no more code, so what its folder holds after the kill is what
it holds while the writer is still writing: the tests look at the folder at that moment.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from datatrove.data import Document
from datatrove.io import OutputFileManager

from ai_filters.blocks import HubShardWriter, ScoreTableWriter, StagedJsonlWriter
from ai_filters.blocks.staged import STAGING_SUFFIX, staging_path
from ai_filters.console import error_line
from ai_filters.documents import read_documents
from ai_filters.selection.folder import SCORED_SHARD, SelectionFolder, read_parquet_columns

FIELDS = ("attention_influence", "ai_doc_tokens")
WRITERS = {  # OUT subfolder -> (writer, its file of domain web, rank 0)
    "scored": (
        lambda out: StagedJsonlWriter(out, output_filename=SCORED_SHARD),
        "web/00000.jsonl.gz",
    ),
    "scores": (lambda out: ScoreTableWriter(out, FIELDS), "web/000_00000.parquet"),
    "selected": (lambda out: HubShardWriter(out, FIELDS, batch_size=2), "data/web/00000.parquet"),
}


def document(index: int) -> Document:
    metadata = {"domain": "web", "attention_influence": 0.1 * index, "ai_doc_tokens": 10 + index}
    return Document(text=f"text {index} " * 50, id=f"web/{index}", metadata=metadata)


def listed(out: Path) -> dict[str, list[str]]:
    """What the stages after scoring find in the folder: the files their globs match."""
    folder = SelectionFolder(out)
    return {
        "scored": folder.scored_files(),
        "scores": [p for paths in folder.score_tables().values() for p in paths],
        "selected": [p for paths in folder.selected_shards().values() for p in paths],
    }


def ids(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        return read_parquet_columns(str(path), ["id"])["id"].to_pylist()
    return [d["id"] for d in read_documents(path)]


@pytest.mark.parametrize("output", list(WRITERS))
def test_a_file_being_written_is_not_under_its_name(tmp_path, output):
    make, name = WRITERS[output]
    writer = make(str(tmp_path / output))
    with writer:
        for index in range(5):
            writer.write(document(index), rank=0)
        for file in writer.output_mg.get_open_files().values():
            file.flush()
        # the moment a SIGKILL would freeze: the output is open, the task not done
        assert not (tmp_path / output / name).exists()
        assert listed(tmp_path) == {"scored": [], "scores": [], "selected": []}
        staged = list((tmp_path / output).rglob(f".*{STAGING_SUFFIX}"))
        assert len(staged) == 1 and staged[0].parent == (tmp_path / output / name).parent
    assert ids(tmp_path / output / name) == [f"web/{index}" for index in range(5)]
    assert not list((tmp_path / output).rglob(f"*{STAGING_SUFFIX}"))
    assert listed(tmp_path)[output] == [str(tmp_path / output / name)]


@pytest.mark.parametrize("output", list(WRITERS))
def test_an_error_through_the_writer_publishes_nothing(tmp_path, output):
    make, _ = WRITERS[output]
    writer = make(str(tmp_path / output))

    def failing():
        yield from (document(index) for index in range(3))
        raise RuntimeError("the scorer failed")

    with pytest.raises(RuntimeError, match="the scorer failed"):
        for _ in writer.run(failing(), rank=0):
            pass
    assert [p for p in (tmp_path / output).rglob("*") if p.is_file()] == []


def test_a_rewrite_replaces_the_file_whole(tmp_path):
    out = tmp_path / "scored"
    for count in (5, 3):  # a first attempt, then a retry writing the same name
        with StagedJsonlWriter(str(out), output_filename=SCORED_SHARD) as writer:
            for index in range(count):
                writer.write(document(index), rank=0)
    assert ids(out / "web" / "00000.jsonl.gz") == ["web/0", "web/1", "web/2"]
    assert [p.name for p in out.rglob("*") if p.is_file()] == ["00000.jsonl.gz"]


def test_a_remote_folder_is_written_as_datatrove_does():
    writer = StagedJsonlWriter("memory://staged-test/scored", output_filename=SCORED_SHARD)
    assert type(writer.output_mg) is OutputFileManager


def test_a_full_disk_names_the_output_file_and_leaves_no_staging_file(tmp_path):
    out = tmp_path / "scored"
    final = out / "web" / "00000.jsonl.gz"
    staging = Path(staging_path(str(final)))
    staging.parent.mkdir(parents=True)
    staging.symlink_to("/dev/full")  # every write there fails with ENOSPC, as on a full disk
    with pytest.raises(OSError) as raised:
        with StagedJsonlWriter(str(out), output_filename=SCORED_SHARD) as writer:
            writer.write(document(0), rank=0)
    assert error_line(raised.value) == f"no space left on device writing {final}"
    assert not final.exists() and not staging.is_symlink()
