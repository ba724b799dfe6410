"""Domains of a corpus: which datatrove reader reads each one, and where.

A domains file is YAML mapping each domain name to a reader spec::

    web:
      reader: parquet            # jsonl | parquet
      path: hf://datasets/HuggingFaceTB/smollm-corpus/fineweb-edu-dedup
      glob: "*.parquet"          # optional
      text_key: text             # optional
      id_key: id                 # optional
      limit: -1                  # optional: documents per task, -1 = all

Every document read gets ``metadata["domain"]`` set to its domain's name. The readers
themselves are in :mod:`ai_filters.blocks.readers`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
SPEC_KEYS = {"reader", "path", "glob", "text_key", "id_key", "limit"}
READER_NAMES = ("jsonl", "parquet")

# The paper's corpus. Python-Edu on the Hub holds only Software Heritage blob ids, not text:
# fetch the files first and point the "code" domain at them.
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


def is_safe_name(name: object) -> bool:
    """Whether ``name`` can be one folder or file name under an output folder and nothing else:
    letters, digits, '.', '_' and '-', not empty, not '.' or '..' (so no separator, no way
    up, no absolute path)."""
    return isinstance(name, str) and bool(SAFE_NAME.fullmatch(name)) and name not in (".", "..")


def check_domain_name(domain: object, where: str = "domains") -> None:
    """Raise :class:`DomainSpecError` in one line when ``domain`` cannot name a folder
    (:func:`is_safe_name`): domains are folders of every output (``OUT/scored/<domain>/``)."""
    if not is_safe_name(domain):
        raise DomainSpecError(
            f"{where}: domain name '{domain}' is used in output paths: use letters, digits, "
            "'.', '_' or '-' only"
        )


def check_spec(domain: str, spec: object, where: str = "domains") -> None:
    """Raise :class:`DomainSpecError` with a precise message when ``spec`` is not valid."""
    check_domain_name(domain, where)
    if not isinstance(spec, Mapping):
        raise DomainSpecError(f"{where}: domain '{domain}' must map to a reader spec")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise DomainSpecError(
            f"{where}: domain '{domain}' has unknown keys {sorted(unknown)}; "
            f"allowed: {sorted(SPEC_KEYS)}"
        )
    if spec.get("reader") not in READER_NAMES:
        raise DomainSpecError(
            f"{where}: domain '{domain}' needs reader: one of {', '.join(READER_NAMES)}"
        )
    if not spec.get("path"):
        raise DomainSpecError(f"{where}: domain '{domain}' needs a path")


def corpus_domains(domains_file: str | None) -> dict[str, dict]:
    """The domain specs of ``domains_file`` or, without one, of the SmolLM corpus on the Hub
    (the demo corpus's are :func:`ai_filters.demo.corpus.corpus_domain_specs`)."""
    return load_domains(domains_file) if domains_file else SMOLLM_CORPUS
