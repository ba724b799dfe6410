"""The output disk (or the temporary folder) fills mid-run: one line naming the file, no
traceback; once space is freed the same command finishes with the undisturbed outcome.

Each scenario mounts a small tmpfs (root is needed; a refused mount fails the test with its
reason). Two runs of the pipeline each, about 25 s on the tiny model: slow.
"""

from __future__ import annotations

import pytest
from fault_disk import SCENARIOS

# scenario -> (the start of its one-line error, where the file it names lies in its folder)
EXPECTED = {
    "full disk: scoring": ("smollm_select.py: error: stage 'score' failed", "disk/out/"),
    "full disk: selecting": ("smollm_select.py: error: stage 'select' failed", "disk/out/"),
    "full disk: tokenizing": (
        "tokenize_for_nanotron.py: error: stage 'tokenize_corpus' failed",
        "disk/out/tokenized/corpus/",
    ),
    "full temporary folder": (
        "smollm_select.py: error: stage 'select' failed",
        "tmp/ai-filters-shard-",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_full_disk_stops_in_one_line_and_the_rerun_completes(name, fault_inputs, tmp_path):
    result = SCENARIOS[name](tmp_path, fault_inputs)
    assert result.survived, result.detail
    assert (result.documents_lost, result.duplicated_ids) == (0, 0)
    start, where = EXPECTED[name]
    error = result.detail.split("; ")[0]  # the failed run's last line (one line: checked)
    assert error.startswith(start), result.detail
    assert f"no space left on device writing {tmp_path / where}" in error, result.detail
