"""Write ``gpu_bundle/``: everything the GPU check reads that the GPU machine lacks.

That machine has no package index and no network; only the working tree travels, with what it
carries, 64 MiB in all. The bundle holds:

- ``wheels/``: cp312 manylinux x86_64 wheels of every package the run imports that the image
  lacks (``benchmarks/gpu_image.txt``): the dependency closure of this project's requirements,
  not descending into packages the image has, at the versions of ``constraints.txt``. datatrove's
  ``[io]`` extra is left out: of it the run uses orjson (a direct requirement) and pyarrow (in
  the image);
- ``tokenizer/``: the embedded SmolLM2's tokenizer files (the random-weight models use them);
- ``corpus/``: the demo corpus as ``make demo`` writes it (``<domain>/*.jsonl.gz``);
- ``texts.jsonl.gz``: every local-corpus text, the source of the benchmarks' documents;
- ``manifest.json``: what is in it, sizes and hashes, and the size of tree plus bundle.

The working tree plus the bundle must stay within ``--limit-mib`` (60 MiB): the script fails,
saying by how much, when it does not.

    make gpu-bundle            # = python benchmarks/gpu_bundle.py --out gpu_bundle
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from common import TOKENIZER_FILES, write_corpus_texts
from packaging.requirements import Requirement

from ai_filters.demo.steps import write_demo_corpus

ROOT = Path(__file__).resolve().parents[1]
IMAGE_LIST = ROOT / "benchmarks" / "gpu_image.txt"
CONSTRAINTS = ROOT / "constraints.txt"
DEMO_DOCS_PER_DOMAIN = 50
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
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
MIB = 2**20


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


def download_wheels(names: Sequence[str], pins: dict[str, str], folder: Path) -> list[Path]:
    """cp312 manylinux x86_64 wheels (or pure-Python ones) of ``names`` at their pins."""
    unpinned = [name for name in names if name not in pins]
    if unpinned:
        raise SystemExit(f"error: no pin in constraints.txt for {', '.join(unpinned)}")
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--only-binary=:all:", "--python-version", TARGET["python_version"]]
    command += ["--implementation", "cp", "--dest", str(folder)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + [f"{name}=={pins[name]}" for name in names], check=True)
    return sorted(folder.glob("*.whl"))


def copy_tokenizer(folder: Path) -> None:
    """The embedded model's tokenizer files (converting the model once if needed)."""
    from ai_filters.engine.models import embedded_model_folder

    source = embedded_model_folder()
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)


def tree_bytes() -> int:
    """Bytes of the working tree that travels: tracked and untracked, not ignored, files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    paths = (ROOT / name.decode() for name in listed if name)
    return sum(path.stat().st_size for path in paths if path.is_file())


def manifest(out: Path, wheels: list[Path], counts: dict[str, int], texts: int) -> dict:
    """What the bundle holds, with sizes and hashes."""

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    bundle = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    tree = tree_bytes()
    return {
        "python": f"cp{TARGET['python_version'].replace('.', '')}",
        "platforms": list(PLATFORMS),
        "wheels": {
            wheel.name: {"bytes": wheel.stat().st_size, "sha256": digest(wheel)} for wheel in wheels
        },
        "tokenizer": sorted(path.name for path in (out / "tokenizer").iterdir()),
        "corpus_documents": counts,
        "texts_documents": texts,
        "bundle_mib": round(bundle / MIB, 2),
        "tree_mib": round(tree / MIB, 2),
        "tree_plus_bundle_mib": round((bundle + tree) / MIB, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "gpu_bundle", help="bundle folder")
    parser.add_argument(
        "--limit-mib", type=float, default=60.0, help="most the tree plus the bundle may weigh"
    )
    args = parser.parse_args(argv)
    if args.out.exists():
        shutil.rmtree(args.out)
    _, needed = requirement_closure(project_requirements(), set(image_packages()))
    print(f"packages the image lacks: {', '.join(needed)}")
    wheels = download_wheels(needed, pinned_versions(), args.out / "wheels")
    copy_tokenizer(args.out / "tokenizer")
    counts = write_demo_corpus(args.out / "corpus", DEMO_DOCS_PER_DOMAIN)
    texts = write_corpus_texts(args.out / "texts.jsonl.gz")
    record = manifest(args.out, wheels, counts, texts)
    (args.out / "manifest.json").write_text(json.dumps(record, indent=1) + "\n")
    total = record["tree_plus_bundle_mib"]
    print(
        f"wrote {args.out}: {len(wheels)} wheels, bundle {record['bundle_mib']} MiB, tree "
        f"{record['tree_mib']} MiB, together {total} MiB (limit {args.limit_mib})"
    )
    if total > args.limit_mib:
        print(f"error: tree plus bundle is {total - args.limit_mib:.1f} MiB over the limit")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
