"""The selection pipeline on a real Ray cluster (``ray start`` on 127.0.0.1, stopped after):
it selects what a local run selects, a rerun skips what completed, and ``ai-filters status``
reads the run. The runs score with the tiny model (fast)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ai_filters.cli import main as ai_filters_main
from ai_filters.engine.numerics import loss_rtol, score_atol
from tests.helpers.console import error_line_of
from tests.helpers.models import other_shape_heads
from tests.helpers.pipelines import ROOT, SELECT_SCRIPT, outputs, run

# two pipeline runs and a rerun, plus starting and stopping a Ray cluster
pytestmark = pytest.mark.slow

MAX_TOKENS = 32
STAGES = ("score", "thresholds", "select", "report")
# what a task asks of the 4 GiB the test cluster declares
ON_RAY = ["--executor", "ray", "--mem-per-cpu-gb", "1", "--one-task-mem-gb", "1"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """Stop the cluster: SIGTERM to ``ray start --block`` drains the node and ends the processes
    it started; whatever of its process group is left then gets SIGKILL."""
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A one-node Ray cluster on 127.0.0.1 (2 CPUs, 4 GiB declared), its workers importing this
    checkout; yields its address (what RAY_ADDRESS takes)."""
    ray_cli = Path(sys.executable).parent / "ray"
    assert ray_cli.exists(), "ray is not installed: `make install` installs ai-filters[ray]"
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit
    log = tmp_path_factory.mktemp("ray_cluster") / "ray_start.log"
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    command = [str(ray_cli), "start", "--head", "--block", "--node-ip-address", "127.0.0.1"]
    command += ["--port", str(port), "--num-cpus", "2", "--num-gpus", "0"]
    command += ["--memory", str(4 * 1024**3), "--disable-usage-stats"]
    command += ["--include-dashboard", "false", "--temp-dir", temp]
    with open(log, "w") as output:
        process = subprocess.Popen(
            command,
            env={**os.environ, "PYTHONPATH": python_path},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            assert process.poll() is None, f"ray start failed:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"ray start hangs:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield address
    finally:
        _stop(process)
        shutil.rmtree(temp, ignore_errors=True)


def select_command(inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(SELECT_SCRIPT),
        "--out",
        str(out),
        "--domains",
        str(inputs["domains"]),
        "--heads",
        str(inputs["heads"]),
        "--model",
        str(inputs["model"]),
        "--max-tokens",
        str(MAX_TOKENS),
        "--tasks",
        "2",
        "--batch-size",
        "8",
        *extra,
    ]


def on_ray(inputs, out: Path, address: str) -> subprocess.CompletedProcess:
    command = select_command(inputs, out, *ON_RAY)
    environment = {**os.environ, "RAY_ADDRESS": address}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def task_records(out: Path) -> dict[Path, tuple[int, bytes]]:
    """Every completion marker, stats file and task log of the run, with its mtime and bytes."""
    paths = [
        path
        for stage in STAGES
        for kind in ("completions", "stats", "logs")
        for path in sorted((out / "logs" / stage / kind).iterdir())
    ]
    return {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in paths}


def test_ray_selects_what_a_local_run_selects_and_a_rerun_skips(
    select_inputs, tiny, ray_cluster, tmp_path, measurements, capsys
):
    run(select_command(select_inputs, tmp_path / "local"))
    started = time.monotonic()
    result = on_ray(select_inputs, tmp_path / "ray", ray_cluster)
    elapsed = time.monotonic() - started
    out, local = tmp_path / "ray", tmp_path / "local"
    assert "pipeline wall time" in result.stdout  # Ray runs return when every stage finished
    scores, expected = outputs(out), outputs(local)
    assert scores["selected"].keys() == expected["selected"].keys()
    assert scores["rejected"].keys() == expected["rejected"].keys()
    assert scores["skipped"] == expected["skipped"]
    loaded, _ = tiny
    rtol = loss_rtol(loaded.model.config, MAX_TOKENS)  # Ray tasks: other threads, other rounding
    thresholds = json.loads((out / "thresholds.json").read_text())
    local_thresholds = json.loads((local / "thresholds.json").read_text())
    assert thresholds.keys() == local_thresholds.keys()
    for domain, value in thresholds.items():
        reference = local_thresholds[domain]
        if isinstance(value, dict):  # compare the numbers of a domain's record
            assert value.keys() == reference.keys()
            for key, number in value.items():
                assert number == pytest.approx(reference[key], abs=score_atol(reference[key], rtol))
        else:
            assert value == pytest.approx(reference, abs=score_atol(reference, rtol))
    measurements.append(f"selection pipeline on a 2-CPU local Ray cluster: {elapsed:.1f} s wall")

    before = task_records(out)
    rerun = on_ray(select_inputs, out, ray_cluster)
    assert task_records(out) == before  # no task ran again: nothing was rewritten
    assert rerun.stderr.count("appear to be completed already. Nothing to run.") == len(STAGES)

    capsys.readouterr()
    assert ai_filters_main(["status", str(out)]) == 0
    table = capsys.readouterr().out
    for stage, tasks in zip(STAGES, (2, 1, 2, 1), strict=True):
        assert f"| {stage} " in table and f"{tasks}/{tasks}" in table, table


def test_a_failed_ray_task_stops_the_chain_in_one_line(select_inputs, ray_cluster, tmp_path):
    """Heads of another model: both scoring tasks fail on the cluster; the run ends with one
    line naming the stage and the logs (datatrove alone would have the next stage wait for the
    failed one forever), and ``ai-filters status`` names the failed tasks' logs."""
    inputs = {**select_inputs, "heads": other_shape_heads(tmp_path / "heads.json")}
    out = tmp_path / "out"
    command = select_command(inputs, out, *ON_RAY)
    environment = {**os.environ, "RAY_ADDRESS": ray_cluster}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 2
    message = error_line_of(result.stderr, "smollm_select.py")
    assert "stage 'score': 2 of 2 tasks did not complete on Ray (tasks 0, 1" in message
    assert "Traceback" not in result.stderr
    assert not (out / "logs" / "thresholds").exists()  # the next stage never started
    status = subprocess.run(
        [sys.executable, "-m", "ai_filters.cli", "status", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 1
    assert f"score task 0 failed: see {out / 'logs' / 'score' / 'logs' / 'task_00000.log'}" in (
        status.stdout
    )
