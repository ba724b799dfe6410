"""Build a Python 3.12 virtual environment holding only packages of the GPU machine's image:
the machine that ``benchmarks/gpu_check.sh`` runs on, simulated on a CPU.

It installs the image's packages (``benchmarks/gpu_image.txt``) that the run needs, at
the image's recorded versions (torch 2.11.0, transformers 5.17.0, ...; ``constraints.txt``'s pin
where the image's version was not recorded), with their dependencies, and then checks that
every installed distribution is one of the image's, removing dependencies that newer releases
of image packages pulled in but the image does not list (their versions there were not
recorded): what the run needs of them would then fail, as on the machine. torch 2.11.0 from
PyPI is the CUDA build (the CPU build of that version is not on PyPI); it runs on a CPU. What
the image lacks must then come from ``gpu_bundle/`` alone, as on the GPU machine.

    python benchmarks/gpu_image_venv.py --python python3.12 --out .cache/gpu_image_venv
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from gpu_image import (
    image_packages,
    normalized,
    pinned_versions,
    project_requirements,
    requirement_closure,
)

ALWAYS_THERE = {"pip", "setuptools", "wheel"}  # a venv's own tools (the image has them too)


def wanted(image: dict[str, str | None], pins: dict[str, str]) -> list[str]:
    """The image's packages that the run needs, pinned to the image's version (else to
    ``constraints.txt``'s)."""
    from_image, _ = requirement_closure(project_requirements(), set(image))
    chosen = []
    for name in from_image:
        version = image[name] or pins.get(name)
        chosen.append(f"{name}=={version}" if version else name)
    return chosen


def installed(python: Path) -> dict[str, str]:
    """The distributions of the environment of ``python``: normalized name -> version."""
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {normalized(entry["name"]): entry["version"] for entry in json.loads(listed)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--python", default="python3.12", help="a Python 3.12 interpreter")
    parser.add_argument("--out", type=Path, required=True, help="the environment's folder")
    args = parser.parse_args(argv)
    image = image_packages()
    python = args.out / "bin" / "python"
    if not python.exists():
        subprocess.run([args.python, "-m", "venv", str(args.out)], check=True)
    version = subprocess.run(
        [str(python), "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != "3.12":
        print(f"error: {args.python} is Python {version}; the GPU image has 3.12", file=sys.stderr)
        return 2
    requirements = wanted(image, pinned_versions())
    print(f"installing the image's {', '.join(requirements)}", flush=True)
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(command + requirements, check=True)
    extra = sorted(set(installed(python)) - set(image) - ALWAYS_THERE)
    if extra:  # dependencies of newer releases of image packages whose version is not recorded
        print(f"removing what the image does not list: {', '.join(extra)}", flush=True)
        uninstall = [str(python), "-m", "pip", "uninstall", "--quiet", "--yes", *extra]
        subprocess.run(uninstall, check=True)
    left = sorted(set(installed(python)) - set(image) - ALWAYS_THERE)
    if left:
        print(f"error: not in the GPU image: {', '.join(left)}", file=sys.stderr)
        return 1
    print(f"{args.out}: {len(installed(python))} distributions, all of the GPU image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
