"""The GPU machine's image against this project's requirements: the image's package list
(``benchmarks/gpu_image.txt``), its interpreter (for requirement markers), ``constraints.txt``'s
pins, and the dependency closure of the project's requirements split into what the image has and
what it lacks. ``gpu_bundle.py`` bundles what it lacks; ``gpu_image_venv.py`` builds a copy of
what it has.

A shared benchmark module (see ``common.py``): imported, never run. It needs ``packaging`` alone,
so it also serves the interpreter that builds the image's copy.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
IMAGE_LIST = ROOT / "benchmarks" / "gpu_image.txt"
CONSTRAINTS = ROOT / "constraints.txt"
TARGET = {  # the GPU machine: its interpreter, for evaluating requirement markers
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}


def normalized(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages(path: Path = IMAGE_LIST) -> dict[str, str | None]:
    """The image's packages: normalized name -> recorded version (``None`` when unrecorded)."""
    packages: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            packages[normalized(name)] = version or None
    return packages


def project_requirements() -> list[Requirement]:
    """This project's runtime requirements (pyproject.toml), without extras of dependencies."""
    import tomllib

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirements = [Requirement(text) for text in listed]
    for requirement in requirements:
        requirement.extras = set()
    return requirements


def requirement_closure(
    requirements: list[Requirement], image: set[str]
) -> tuple[list[str], list[str]]:
    """What the run needs, split into what ``image`` has and what it lacks: ``requirements``
    and, recursively, the requirements of each one it lacks (read from this environment's
    installed metadata; the image's packages bring their own)."""
    from_image: set[str] = set()
    missing: set[str] = set()
    pending = list(requirements)
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(TARGET):
            continue
        name = normalized(requirement.name)
        if name in image:
            from_image.add(name)
        elif name not in missing:
            missing.add(name)
            pending += [Requirement(text) for text in importlib.metadata.requires(name) or []]
    return sorted(from_image), sorted(missing)


def pinned_versions(path: Path = CONSTRAINTS) -> dict[str, str]:
    """``constraints.txt``'s pins: normalized name -> version."""
    pins = {}
    for line in path.read_text().splitlines():
        name, separator, version = line.split("#")[0].strip().partition("==")
        if separator:
            pins[normalized(name)] = version.strip()
    return pins
