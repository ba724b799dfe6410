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
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from common import MIB, ROOT, TOKENIZER_FILES, write_corpus_texts
from gpu_image import (
    TARGET,
    image_packages,
    pinned_versions,
    project_requirements,
    requirement_closure,
)

from ai_filters.demo.steps import write_demo_corpus

DEMO_DOCS_PER_DOMAIN = 50
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


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
