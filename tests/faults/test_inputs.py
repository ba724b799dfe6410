"""Bad input mid-domain and fields that first appear late: nothing lost, nothing dropped."""

from __future__ import annotations

from fault_inputs import broken_files_mid_domain, fields_first_met_late


def test_broken_files_mid_domain_are_skipped_and_the_rest_selected(fault_inputs, tmp_path):
    result = broken_files_mid_domain(tmp_path, fault_inputs)
    assert result.survived, result.detail
    assert (result.documents_lost, result.duplicated_ids) == (0, 0)
    assert "('web', 'unreadable'): 1" in result.detail
    assert "('math', 'unreadable'): 1" in result.detail


def test_fields_first_met_late_are_columns_of_every_parquet_file(fault_inputs, tmp_path):
    result = fields_first_met_late(tmp_path, fault_inputs)
    assert result.survived, result.detail
    assert (result.documents_lost, result.duplicated_ids) == (0, 0)
