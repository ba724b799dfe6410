"""datatrove's parquet writer, made to fail cleanly when a file cannot be closed (a full disk).

datatrove's ``ParquetWriter.close`` closes its files one after the other; when one fails, the
failing pyarrow writer and every one not reached yet stay open. pyarrow closes an open writer
again when it is garbage-collected, which fails the same way and prints a traceback ("Exception
ignored in ParquetWriter.__del__") after the task's one-line error, once per file.
"""

from __future__ import annotations

import pyarrow.parquet as pq
from datatrove.pipeline.writers import ParquetWriter


def abandon(writer: pq.ParquetWriter) -> None:
    """Mark ``writer`` closed without writing anything more: its file is incomplete and stays
    so (the task failed; it has no completion marker, and its rerun writes the file again)."""
    writer.is_open = False


class CleanFailingParquetWriter(ParquetWriter):
    """``ParquetWriter`` that, when closing a file raises, abandons (:func:`abandon`) every
    pyarrow writer of the step, the failing one included, then lets the error through."""

    def close_file(self, filename: str) -> None:
        writers = list(self._writers.values())
        try:
            super().close_file(filename)
        except BaseException:
            for writer in writers:
                abandon(writer)
            self._writers.clear()
            raise
