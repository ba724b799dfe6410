"""What the one-line errors of ``ai-filters`` and the pipeline scripts look like on stderr."""

from __future__ import annotations


def error_line_of(stderr: str, prog: str) -> str:
    """The single error line ``prog`` printed; it must be the last line of stderr."""
    lines = stderr.strip().splitlines()
    errors = [text for text in lines if text.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, stderr[-3000:]
    assert lines[-1] == errors[0] and "Traceback" not in stderr
    return errors[0]
