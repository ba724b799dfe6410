"""Domains of a corpus: which datatrove reader reads each one.

A domains file is YAML mapping each domain name to a reader spec::

    web:
      reader: parquet            # jsonl | parquet
      path: hf://datasets/HuggingFaceTB/smollm-corpus/fineweb-edu-dedup
      glob: "*.parquet"          # optional
      text_key: text             # optional
      id_key: id                 # optional
      limit: -1                  # optional: documents per task, -1 = all

Every document read gets ``metadata["domain"]`` set to its domain's name.
:class:`DomainsReader` reads all domains in one pipeline step, each sharded over the same tasks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader, ParquetReader
from datatrove.pipeline.readers.base import BaseReader

READERS = {"jsonl": JsonlReader, "parquet": ParquetReader}
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
SPEC_KEYS = {"reader", "path", "glob", "text_key", "id_key", "limit"}

# The paper's corpus (DESIGN.md section 1). Python-Edu on the Hub holds only Software Heritage
# blob ids, not text: fetch the files first and point the "code" domain at them.
SMOLLM_CORPUS = {
    "web": {
        "reader": "parquet",
        "path": "hf://datasets/HuggingFaceTB/smollm-corpus/fineweb-edu-dedup",
    },
    "textbook": {
        "reader": "parquet",
        "path": "hf://datasets/HuggingFaceTB/smollm-corpus/cosmopedia-v2",
    },
    "math": {"reader": "parquet", "path": "hf://datasets/open-web-math/open-web-math/data"},
}


class DomainSpecError(ValueError):
    """A domains file or spec is malformed."""


def load_domains(path: str | Path) -> dict[str, dict]:
    """Read and check a YAML domains file (format in the module docstring)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DomainSpecError(f"domains file {path} does not exist")
    specs = yaml.safe_load(path.read_text())
    if not isinstance(specs, Mapping) or not specs:
        raise DomainSpecError(f"{path}: expected a mapping of domain name -> reader spec")
    for domain, spec in specs.items():
        check_spec(str(domain), spec, str(path))
    return {str(domain): dict(spec) for domain, spec in specs.items()}


def check_spec(domain: str, spec: object, where: str = "domains") -> None:
    """Raise :class:`DomainSpecError` with a precise message when ``spec`` is not valid."""
    if not SAFE_NAME.fullmatch(domain) or domain in (".", ".."):
        raise DomainSpecError(
            f"{where}: domain name '{domain}' is used in output paths: use letters, digits, "
            "'.', '_' or '-' only"
        )
    if not isinstance(spec, Mapping):
        raise DomainSpecError(f"{where}: domain '{domain}' must map to a reader spec")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise DomainSpecError(
            f"{where}: domain '{domain}' has unknown keys {sorted(unknown)}; "
            f"allowed: {sorted(SPEC_KEYS)}"
        )
    if spec.get("reader") not in READERS:
        raise DomainSpecError(
            f"{where}: domain '{domain}' needs reader: one of {', '.join(READERS)}"
        )
    if not spec.get("path"):
        raise DomainSpecError(f"{where}: domain '{domain}' needs a path")


def build_reader(domain: str, spec: Mapping) -> BaseReader:
    """The datatrove reader of one domain; its documents carry ``metadata["domain"]``."""
    check_spec(domain, spec)
    return READERS[spec["reader"]](
        spec["path"],
        glob_pattern=spec.get("glob"),
        text_key=spec.get("text_key", "text"),
        id_key=spec.get("id_key", "id"),
        limit=spec.get("limit", -1),
        default_metadata={"domain": domain},
    )


class DomainsReader(PipelineStep):
    """Reads every domain in turn; task ``rank`` reads its shard of each domain's files."""

    name = "📖 domains reader"
    type = "📖 - READER"

    def __init__(self, specs: Mapping[str, Mapping]) -> None:
        super().__init__()
        self.readers = {domain: build_reader(domain, spec) for domain, spec in specs.items()}

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data
        for domain, reader in self.readers.items():
            for document in reader.run(None, rank, world_size):
                document.metadata["domain"] = domain
                self.stat_update(f"read_{domain}")
                yield document


def corpus_domains(out: str | Path, demo: bool, domains_file: str | None) -> dict[str, dict]:
    """The domain specs a pipeline reads: the demo corpus written under ``out/corpus/`` (one
    jsonl folder per domain), a domains file, or by default the SmolLM corpus on the Hub."""
    if demo:
        corpus = Path(out).resolve() / "corpus"
        return {
            folder.name: {"reader": "jsonl", "path": str(folder)}
            for folder in sorted(corpus.iterdir())
            if folder.is_dir()
        }
    return load_domains(domains_file) if domains_file else SMOLLM_CORPUS
