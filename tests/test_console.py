"""One-line errors: the line is the last thing on stderr, even with progress bars still open."""

from __future__ import annotations

import errno
import sys

import fsspec
import pytest
from tqdm import tqdm

from ai_filters.console import OneLineErrors, error_line


def test_open_progress_bars_print_before_the_error_line(capsys):
    def read_forever():
        with tqdm(total=10, desc="reading", file=sys.stderr) as bar:
            while True:
                bar.update()
                yield 1

    reader = read_forever()
    next(reader)  # suspended with its bar open, as a failed datatrove task leaves its readers
    with OneLineErrors("prog", debug=False) as errors:
        raise ValueError("the input is broken\nsecond line")
    stderr = capsys.readouterr().err
    assert errors.exit_code == 2
    assert stderr.strip().splitlines()[-1] == (
        "prog: error: the input is broken (--debug shows the traceback)"
    )
    del reader  # closing the reader now prints nothing more: its bar is already closed
    assert capsys.readouterr().err == ""


def test_a_bug_keeps_its_traceback():
    try:
        with OneLineErrors("prog", debug=False):
            raise ZeroDivisionError("bug")
    except ZeroDivisionError:
        return
    raise AssertionError("OneLineErrors swallowed an unexpected exception")


def test_a_full_disk_names_the_file_being_written(tmp_path):
    full = tmp_path / "out.jsonl.gz"
    full.symlink_to("/dev/full")  # every write there fails with ENOSPC, as on a full disk
    with pytest.raises(OSError) as raised:
        with fsspec.open(str(full), "wt", compression="gzip") as file:  # as datatrove writes
            file.write("x" * 100_000)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename is None
    assert error_line(raised.value) == f"no space left on device writing {full}"


def test_the_first_full_disk_error_is_named_not_the_log_closed_after_it(tmp_path):
    """Closing a task's log file after its output failed raises again; the output is named."""
    output, log = tmp_path / "out.parquet", tmp_path / "task.log"
    output.symlink_to("/dev/full")
    log.symlink_to("/dev/full")
    with pytest.raises(OSError) as raised:
        try:
            with fsspec.open(str(output), "wb") as file:
                file.write(b"x")
        finally:
            with fsspec.open(str(log), "wb") as file:
                file.write(b"log")
    assert error_line(raised.value) == f"no space left on device writing {output}"


def test_other_os_errors_keep_their_message(tmp_path):
    with pytest.raises(OSError) as raised:
        (tmp_path / "missing" / "x").read_text()
    assert error_line(raised.value).startswith("[Errno 2] No such file or directory")


def test_the_storage_client_giving_up_is_one_line(capsys):
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    for error in (
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9/bucket/key"),
        ConnectionClosedError(endpoint_url="http://127.0.0.1:9/bucket/key"),
    ):
        with OneLineErrors("prog", debug=False) as errors:
            raise error
        assert errors.exit_code == 2
        line = capsys.readouterr().err.strip()
        assert line.startswith("prog: error: ") and "http://127.0.0.1:9/bucket/key" in line
