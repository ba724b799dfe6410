"""The last stage of the selection pipeline: account for every document, describe the selection."""

from __future__ import annotations

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from ai_filters.selection.folder import SelectionFolder
from ai_filters.selection.report import build_report, conserved, format_report


class SelectionReport(PipelineStep):
    """Writes ``report.md`` / ``report.json`` into the selection folder (one task).

    The report (see :mod:`ai_filters.selection.report`) includes the conservation checks
    ``read = scored + skipped`` and ``scored = selected + rejected`` per domain; a broken one
    makes the step fail after the report is written.
    """

    _requires_dependencies = ["scipy"]

    name = "🧾 selection report"
    type = "📊 - STATS"

    def __init__(self, output_folder: str) -> None:
        super().__init__()
        self.output_folder = output_folder

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        folder = SelectionFolder(self.output_folder)
        report = build_report(folder)
        folder.write_report(report, format_report(report))
        broken = [domain for domain, row in report["domains"].items() if not conserved(row)]
        if broken:
            raise RuntimeError(f"documents not accounted for in domains {broken}; see report.md")
        if data:
            yield from data
