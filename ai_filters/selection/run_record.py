"""``OUT/run.json``: the fingerprint of what determines a run's results, so that a resume with
other inputs is refused instead of mixing the results of two runs.

A rerun of the pipeline skips the tasks that completed (datatrove's completion markers): a rerun
with another heads file would keep the first run's scores for those tasks and add the second
one's for the rest. The first run records each pipeline's fingerprint (one section per script:
``select``, ``tokenize``), a mapping from option to a value or a digest; a later run compares
its own and is refused in one line (:class:`RunChanged`) naming every option that differs.

Files are identified by content: a heads or domains file by its sha256, a model folder by its
``config.json`` and its weight files' names, sizes and sampled bytes (:func:`folder_digest`: a
few MiB read per file, not a full hash, so a 7B model costs no minutes); a Hub id by its name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path

from ai_filters.selection.folder import SelectionFolder, read_json_object, write_json

RUN_RECORD = "run.json"
SAMPLE_BYTES = 1 << 20  # bytes read at each of the start, middle and end of a large file
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


class RunChanged(ValueError):
    """A resume's inputs differ from the run that started the folder; the message names them."""


def file_digest(path: str | Path) -> str:
    """sha256 of a file's content (a local path or a URL datatrove reads)."""
    from datatrove.io import open_file

    digest = hashlib.sha256()
    with open_file(str(path), "rb") as file:
        while chunk := file.read(SAMPLE_BYTES):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def sampled_digest(path: Path) -> str:
    """sha256 of a local file's size and, for a file over three samples long, of
    :data:`SAMPLE_BYTES` at its start, middle and end (else of all of it)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as file:
        if size <= 3 * SAMPLE_BYTES:
            digest.update(file.read())
        for offset in (0, size // 2, size - SAMPLE_BYTES) if size > 3 * SAMPLE_BYTES else ():
            file.seek(offset)
            digest.update(file.read(SAMPLE_BYTES))
    return "sha256:" + digest.hexdigest()


def folder_digest(
    folder: Path, names: tuple[str, ...] = ("config.json",), weights: bool = True
) -> str:
    """The identity of a model or tokenizer folder: the full content of its ``names`` files
    and, with ``weights``, the :func:`sampled_digest` of each weight file (any depth)."""
    digest = hashlib.sha256()
    for name in names:
        if (folder / name).is_file():
            digest.update(f"{name}:{file_digest(folder / name)}".encode())
    suffixes = WEIGHT_SUFFIXES if weights else ()
    for path in sorted(p for p in folder.rglob("*") if p.suffix in suffixes):
        digest.update(f"{path.relative_to(folder)}:{sampled_digest(path)}".encode())
    return "sha256:" + digest.hexdigest()


def model_identity(spec: str) -> str:
    """A selector model's identity: its resolved folder's :func:`folder_digest`, or for a Hub id
    its name (``hub:<id>``: a new revision on the Hub is not seen). A spec this machine cannot
    resolve (a folder only the compute nodes see) is identified by its text; the scoring tasks
    report it if it is missing there too."""
    from ai_filters.engine.models import ModelLoadError, resolve_model_path

    try:
        resolved = Path(resolve_model_path(spec))
    except ModelLoadError:
        return f"not readable here: {spec}"
    return folder_digest(resolved) if resolved.is_dir() else f"hub:{spec}"


def distilled_identity(folder: Path) -> str:
    """A distilled model folder's identity: every file in it (sampled as weights are)."""
    if not folder.is_dir():
        return "missing"
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}:{sampled_digest(path)}".encode())
    return "sha256:" + digest.hexdigest()


def tokenizer_identity(spec: str) -> str:
    """A tokenizer's identity: a ``tokenizer.json`` file's or a folder's tokenizer files'
    content, else (a Hub id) its name."""
    path = Path(spec).expanduser()
    if path.is_file():
        return file_digest(path)
    if path.is_dir():
        return folder_digest(path, ("tokenizer.json", "tokenizer_config.json"), weights=False)
    return f"hub:{spec}"


def read_record(folder: SelectionFolder) -> dict[str, dict[str, str]]:
    """``run.json``: script section -> option -> value (``{}`` when the folder has none)."""
    if not folder.exists(RUN_RECORD):
        return {}
    with folder.open(RUN_RECORD, "rt") as file:
        return read_json_object(file, folder.path(RUN_RECORD))


def differences(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """Each option whose value differs, as ``option (recorded -> now)``, in option order."""
    options = list(recorded) + [name for name in current if name not in recorded]
    return [
        f"{name} ({_short(recorded.get(name))} -> {_short(current.get(name))})"
        for name in options
        if recorded.get(name) != current.get(name)
    ]


def _short(value: str | None) -> str:
    if value is None:
        return "unset"
    digest = value.startswith("sha256:") and len(value) > 22
    return value[:19] + "..." if digest else value


def check_fingerprint(
    folder: SelectionFolder, section: str, fingerprint: Callable[[], Mapping[str, str]]
) -> bool:
    """Whether ``run.json`` records a ``section`` fingerprint (``fingerprint`` is computed only
    then); :class:`RunChanged` naming every differing option when it differs from it."""
    recorded = read_record(folder).get(section)
    if recorded is None:
        return False
    changed = differences(recorded, fingerprint())
    if changed:
        raise RunChanged(
            f"{folder.root} was started with other inputs; resuming would mix two runs' "
            f"results: {'; '.join(changed)}. Rerun with the options of {folder.path(RUN_RECORD)}, "
            "or use a new --out (or delete the folder)"
        )
    return True


def record_fingerprint(
    folder: SelectionFolder, section: str, fingerprint: Mapping[str, str]
) -> None:
    """Write ``section``'s fingerprint into ``run.json`` (the other sections kept)."""
    record = read_record(folder)
    record[section] = dict(fingerprint)
    write_json(record, folder.path(RUN_RECORD))
