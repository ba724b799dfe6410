"""The shipped configs: strict, valid, launchable, and exactly what the generator writes."""

from __future__ import annotations

import subprocess

import pytest

from ai_filters.nanotron import load_config, validate, write_shipped
from tests.nanotron.helpers import SHIPPED, SHIPPED_NAMES


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_shipped_configs_load_strictly_and_validate(name):
    config = load_config(SHIPPED / f"{name}.yaml")
    world = 1 if name == "tiny_smoke" else 64 * 8
    validate(config, world_size=world, global_batch=32 if name == "tiny_smoke" else 1024)
    assert (SHIPPED / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    script = (SHIPPED / f"{name}.slurm").read_text()
    assert '--config-file "$CONFIG"' in script and f"nanotron_configs/{name}.yaml" in script
    subprocess.run(["bash", "-n", str(SHIPPED / f"{name}.slurm")], check=True)


def test_shipped_files_are_what_the_generator_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_shipped("nanotron_configs")
    for name in SHIPPED_NAMES:
        for suffix in (".yaml", ".slurm"):
            generated = (tmp_path / "nanotron_configs" / f"{name}{suffix}").read_text()
            assert generated == (SHIPPED / f"{name}{suffix}").read_text(), f"regenerate {name}"
