"""Domain specs: the keys a domain takes, and names that cannot escape the output folder."""

from __future__ import annotations

import pytest

from ai_filters.domains import (
    DomainSpecError,
    check_spec,
    load_domains,
)


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", "web domain", ""])
def test_domain_names_that_would_leave_the_output_folder_are_refused(name):
    with pytest.raises(DomainSpecError, match="used in output paths"):
        check_spec(name, {"reader": "jsonl", "path": "/data"})


def test_domains_file_errors_name_the_problem(tmp_path):
    path = tmp_path / "domains.yaml"
    path.write_text("web:\n  reader: jsonl\n  path: /data\n  globb: '*.jsonl'\n")
    with pytest.raises(DomainSpecError, match=r"unknown keys \['globb'\]"):
        load_domains(path)
    path.write_text("web:\n  reader: csv\n  path: /data\n")
    with pytest.raises(DomainSpecError, match="needs reader: one of jsonl, parquet"):
        load_domains(path)
