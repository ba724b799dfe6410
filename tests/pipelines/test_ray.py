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
from typing import NamedTuple

import pytest

from ai_filters.cli import main as ai_filters_main
from ai_filters.engine.numerics import loss_rtol, score_atol
from tests.helpers.console import error_line_of
from tests.helpers.models import other_shape_heads
from tests.helpers.pipelines import ROOT, SELECT_SCRIPT, flat, outputs, run, tiny_input_options

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
    command += ["--memory", str(4 * 1024**3), "--object-store-memory", str(200 * 1024**2)]
    command += ["--disable-usage-stats"]
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
        *flat(tiny_input_options(inputs)),
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


class Runs(NamedTuple):
    local: Path
    ray: Path
    ray_seconds: float  # wall time of the run on Ray


@pytest.fixture(scope="module")
def runs(select_inputs, ray_cluster, tmp_path_factory) -> Runs:
    """The same selection run locally and on the cluster."""
    folder = tmp_path_factory.mktemp("runs")
    run(select_command(select_inputs, folder / "local"))
    started = time.monotonic()
    result = on_ray(select_inputs, folder / "ray", ray_cluster)
    elapsed = time.monotonic() - started
    assert "pipeline wall time" in result.stdout  # Ray runs return when every stage finished
    return Runs(folder / "local", folder / "ray", elapsed)


def test_ray_selects_what_a_local_run_selects_and_a_rerun_skips(
    select_inputs, tiny, ray_cluster, runs, capsys, measurements
):
    out, local = runs.ray, runs.local
    seconds = runs.ray_seconds
    measurements.append(f"selection pipeline on a 2-CPU local Ray cluster: {seconds:.1f} s wall")
    scores, expected = outputs(out), outputs(local)
    assert scores["selected"].keys() == expected["selected"].keys()
    assert scores["rejected"].keys() == expected["rejected"].keys()
    assert scores["skipped"] == expected["skipped"]
    loaded, _ = tiny
    rtol = loss_rtol(loaded.model.config, MAX_TOKENS)  # Ray tasks: other threads, other rounding
    thresholds = json.loads((out / "thresholds.json").read_text())
    local_thresholds = json.loads((local / "thresholds.json").read_text())
    assert thresholds.keys() == local_thresholds.keys()
    for domain, record in thresholds.items():
        reference = dict(local_thresholds[domain])
        threshold = reference.pop("threshold")
        assert record.pop("threshold") == pytest.approx(threshold, abs=score_atol(threshold, rtol))
        assert record == reference  # the counts, exactly

    before = task_records(out)
    rerun = on_ray(select_inputs, out, ray_cluster)
    assert task_records(out) == before  # no task ran again: nothing was rewritten
    assert rerun.stderr.count("appear to be completed already. Nothing to run.") == len(STAGES)

    assert status_rows(out, capsys) == status_rows(local, capsys)  # documents, tokens too
    for stage, tasks in zip(STAGES, (2, 1, 2, 1), strict=True):
        assert f"| {stage} | done | {tasks}/{tasks} | 0 | 0 | 0 |" in status_rows(out, capsys)


def status_rows(out: Path, capsys) -> str:
    """The rows of ``ai-filters status OUT`` for the selection's stages."""
    capsys.readouterr()
    assert ai_filters_main(["status", str(out)]) == 0
    rows = capsys.readouterr().out.splitlines()
    return "\n".join(row for row in rows if row.split(" ")[1:2] in ([stage] for stage in STAGES))


def test_ray_tokenizes_what_a_local_run_tokenizes(select_inputs, ray_cluster, runs):
    """tokenize_for_nanotron.py on the cluster writes the same .ds files, byte for byte, as
    locally (the same documents in the same files, the same seeded shuffle per task)."""
    script = str(ROOT / "pipelines" / "tokenize_for_nanotron.py")
    tokenizer = ["--tokenizer", str(select_inputs["model"] / "tokenizer.json"), "--tasks", "2"]
    run([sys.executable, script, "--out", str(runs.local), *tokenizer])
    command = [sys.executable, script, "--out", str(runs.ray), *tokenizer, *ON_RAY]
    environment = {**os.environ, "RAY_ADDRESS": ray_cluster}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ("corpus", "selected"):
        files = sorted((runs.ray / "tokenized" / name).iterdir())
        assert len([f for f in files if f.suffix == ".ds"]) == 2, files  # one per task
        for path in files:
            assert path.read_bytes() == (runs.local / "tokenized" / name / path.name).read_bytes()


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
