"""The package's third-party imports and the dependencies pyproject.toml declares agree."""

from __future__ import annotations

import ast
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser before it joined the standard library
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ai_filters"
# declared but never imported by the package, each for a reason
NOT_IMPORTED = {
    "gguf": "transformers needs it to read the embedded model's GGUF file",
    "accelerate": "transformers' Trainer needs it to train the proxy models",
}


def declared() -> set[str]:
    """Canonical names of ``[project].dependencies`` (extras such as ``datatrove[io]`` are
    part of the declaration of their distribution)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}


def third_party_imports() -> dict[str, set[Path]]:
    """Top-level module -> the files of the package importing it (any depth, lazy or not),
    outside the standard library and the package itself."""
    imports: dict[str, set[Path]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top != PACKAGE.name:
                    imports.setdefault(top, set()).add(path.relative_to(ROOT))
    return imports


def test_every_third_party_import_is_declared():
    dependencies = declared()
    distributions = packages_distributions()
    problems = []
    for module, files in sorted(third_party_imports().items()):
        names = {canonicalize_name(name) for name in distributions.get(module, [])}
        where = ", ".join(map(str, sorted(files)))
        if not names:
            problems.append(f"module {module} (imported by {where}) is installed by no package")
        elif not names & dependencies:
            problems.append(
                f"module {module} (distribution {', '.join(sorted(names))}, imported by {where}) "
                "is not declared in pyproject.toml [project].dependencies"
            )
    assert not problems, "\n".join(problems)


def test_every_declared_dependency_is_imported():
    distributions = packages_distributions()
    imported = {
        canonicalize_name(name)
        for module in third_party_imports()
        for name in distributions.get(module, [])
    }
    exempt = {canonicalize_name(name) for name in NOT_IMPORTED}
    unused = sorted(declared() - imported - exempt)
    assert not unused, f"declared in pyproject.toml but imported nowhere in ai_filters/: {unused}"


def floor(requirement: Requirement):
    """The lowest version a requirement admits (its ``>=`` bound)."""
    from packaging.version import Version

    (bound,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    return Version(bound)


def test_torch_floor_is_the_one_installed_transformers_needs():
    """Below transformers' own torch floor (2.6 for transformers 5) packed rows lose their
    per-document masks; the declared floors admit the pinned versions the suite runs on."""
    from importlib.metadata import requires, version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ours = {Requirement(line).name: Requirement(line) for line in project["dependencies"]}
    theirs = [Requirement(line) for line in requires("transformers")]
    torch_for_transformers = next(
        r for r in theirs if r.name == "torch" and r.marker.evaluate({"extra": "torch"})
    )
    assert floor(ours["torch"]) >= floor(torch_for_transformers)
    for name in ("torch", "transformers"):
        assert ours[name].specifier.contains(version(name).split("+")[0])
