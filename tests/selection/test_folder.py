"""The selection folder: its paths, its records, and the errors that say what is wrong."""

from __future__ import annotations

import json

import pytest

from ai_filters.selection.folder import (
    ScorerRecord,
    SelectionFolder,
    SelectionFolderError,
    read_threshold_values,
    read_thresholds,
    write_thresholds,
)
from ai_filters.selection.thresholds import DomainThreshold


def entry(fraction: float = 0.2, threshold: float = 0.5) -> DomainThreshold:
    return DomainThreshold(threshold, fraction, 10, 1000, 2, 250, 0)


def test_paths_of_the_folder(tmp_path, monkeypatch):
    """Paths are strings, absolute for a local folder (Slurm tasks start elsewhere), URLs for
    object storage."""
    monkeypatch.chdir(tmp_path)
    folder = SelectionFolder("out")
    root = str(tmp_path / "out")
    assert folder.root == root and folder.is_local
    assert folder.heads_file == f"{root}/heads.json"
    assert (folder.scorer_file, folder.thresholds_file) == (
        f"{root}/scorer.json",
        f"{root}/thresholds.json",
    )
    assert (folder.report_json, folder.report_md) == (f"{root}/report.json", f"{root}/report.md")
    assert (folder.scored, folder.skipped) == (f"{root}/scored", f"{root}/skipped")
    assert (folder.selected, folder.rejected) == (f"{root}/selected", f"{root}/rejected")
    assert folder.scores == f"{root}/scores"
    assert (folder.logs(), folder.logs("score")) == (f"{root}/logs", f"{root}/logs/score")
    remote = SelectionFolder("s3://bucket/run")
    assert remote.root == "s3://bucket/run" and not remote.is_local
    assert remote.thresholds_file == "s3://bucket/run/thresholds.json"


def test_shards_are_listed_by_domain_in_order(tmp_path):
    folder = SelectionFolder(tmp_path)
    for path in ("selected/data/web/00001.parquet", "selected/data/web/00000.parquet"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    (tmp_path / "selected" / "data" / "code").mkdir()
    (tmp_path / "selected" / "data" / "code" / "00000.parquet").touch()
    assert folder.selected_shards() == {  # sorted by domain, then file
        "code": [f"{tmp_path}/selected/data/code/00000.parquet"],
        "web": [
            f"{tmp_path}/selected/data/web/00000.parquet",
            f"{tmp_path}/selected/data/web/00001.parquet",
        ],
    }
    assert folder.rejected_shards() == {} and folder.score_tables() == {}


def test_scorer_record_round_trip(tmp_path):
    folder = SelectionFolder(tmp_path)
    with pytest.raises(SelectionFolderError, match="scorer.json is missing"):
        folder.read_scorer()
    assert "scorer.json" in folder.missing()
    record = ScorerRecord("random", "random_score", 0.1)
    folder.write_scorer(record)
    expected = {"scorer": "random", "score_key": "random_score", "fraction": 0.1}
    assert json.loads((tmp_path / "scorer.json").read_text()) == expected
    assert folder.read_scorer() == record and "scorer.json" not in folder.missing()
    for bad in ({"scorer": "random"}, {**expected, "extra": 1}):
        (tmp_path / "scorer.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="is not a scorer record"):
            folder.read_scorer()


def test_thresholds_round_trip_and_errors_name_the_domain(tmp_path):
    path = tmp_path / "thresholds.json"
    write_thresholds({"web": entry(threshold=0.25), "code": entry(threshold=-1.0)}, path)
    assert read_thresholds(path) == {"web": entry(threshold=0.25), "code": entry(threshold=-1.0)}
    assert read_threshold_values(path) == {"web": 0.25, "code": -1.0}
    path.write_text(json.dumps({"web": {"threshold": 0.2}, "code": {"threshold": 0.1, "n": 2}}))
    assert read_threshold_values(path) == {"web": 0.2, "code": 0.1}  # a file written by hand
    with pytest.raises(ValueError, match="domain 'web' is not a threshold entry"):
        read_thresholds(path)
    for bad in ("high", True, None):
        path.write_text(json.dumps({"web": {"threshold": 0.2}, "math": {"threshold": bad}}))
        with pytest.raises(ValueError, match=f"{path}: domain 'math' has no numeric 'threshold'"):
            read_threshold_values(path)
    path.write_text("[0.2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        read_thresholds(path)


def test_require_complete_names_what_is_missing(tmp_path):
    with pytest.raises(SelectionFolderError, match="is not a folder"):
        SelectionFolder(tmp_path / "nothing").require_complete()
    folder = SelectionFolder(tmp_path)
    message = (
        "missing scored/<domain>/\\*.jsonl.gz, selected/data/<domain>/\\*.parquet, "
        "scorer.json, thresholds.json \\(run pipelines/smollm_select.py"
    )
    with pytest.raises(SelectionFolderError, match=message):
        folder.require_complete()
    folder.write_thresholds({"web": entry()})
    folder.write_scorer(ScorerRecord("random", "random_score", 0.2))
    (tmp_path / "scored" / "web").mkdir(parents=True)
    (tmp_path / "scored" / "web" / "00000.jsonl.gz").touch()
    with pytest.raises(
        SelectionFolderError, match="missing selected/data/<domain>/\\*.parquet \\("
    ):
        folder.require_complete()
    (tmp_path / "selected" / "data" / "web").mkdir(parents=True)
    (tmp_path / "selected" / "data" / "web" / "00000.parquet").touch()
    folder.require_complete()
