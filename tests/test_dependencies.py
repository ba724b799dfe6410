"""The package's imports: third-party ones declared in pyproject.toml, its own pointing down the
layers docs/design.md sets, no cycles, no argparse below the command line; and module sizes."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
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


def declared(optional: bool = False) -> set[str]:
    """Canonical names of ``[project].dependencies`` (extras such as ``datatrove[io]`` are
    part of the declaration of their distribution); with ``optional``, also those of the
    package's optional extras (``ai-filters[ray]``; not the ``test`` extra)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    if optional:
        extras = project["optional-dependencies"]
        lines += [line for extra, group in extras.items() if extra != "test" for line in group]
    return {canonicalize_name(Requirement(line).name) for line in lines}


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
    dependencies = declared(optional=True)
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
                "is not declared in pyproject.toml [project].dependencies nor in an extra"
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


# --- the package's own imports: the layers of docs/design.md, no cycles ----------------------

LAYER_ROW = re.compile(r"^\| *(\d+) *\| *(`[a-z_]+`(?:, *`[a-z_]+`)*) *\|", re.M)
MAX_LINES = 450  # a module or benchmark script longer than this is split by concern
MAX_TOP_LEVEL_MODULES = 8  # modules directly in ai_filters/ (the rest live in subpackages)


def design_layers() -> dict[str, int]:
    """Unit (top-level module or subpackage) -> its layer, as docs/design.md's table says."""
    text = (ROOT / "docs" / "design.md").read_text()
    rows = LAYER_ROW.findall(text.split("## Which part may import which", 1)[1])
    return {unit.strip("` "): int(layer) for layer, units in rows for unit in units.split(",")}


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def runtime_imports(path: Path) -> list[str]:
    """The ``ai_filters`` modules ``path`` imports (lazy imports included; imports under
    ``if TYPE_CHECKING:`` left out, they never run), each as precise as a module file allows
    (``from ai_filters.engine import masking`` gives ``ai_filters.engine.masking``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    type_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for child in ast.walk(statement)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in found if name.split(".")[0] == PACKAGE.name]


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports at run time."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in runtime_imports(path):
            while target not in modules:  # a name imported from a module: the module
                target = target.rsplit(".", 1)[0]
            targets.add(target)
        graph[name] = targets - {name}
    return graph


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_docs_table_places_every_unit_of_the_package():
    units = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    units |= {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    layers = design_layers()
    assert units == set(layers), (
        f"docs/design.md's layer table misses {sorted(units - set(layers))} and names "
        f"{sorted(set(layers) - units)}, which are not in ai_filters/"
    )


def test_imports_point_down_the_layers():
    layers = design_layers()
    wrong = [
        f"{module} ({unit_of(module)}, layer {layers[unit_of(module)]}) imports {target} "
        f"({unit_of(target)}, layer {layers[unit_of(target)]})"
        for module, targets in sorted(import_graph().items())
        if unit_of(module) is not None
        for target in sorted(targets)
        if unit_of(target) not in (None, unit_of(module))
        and layers[unit_of(target)] >= layers[unit_of(module)]
    ]
    assert not wrong, "imports against docs/design.md's layers:\n" + "\n".join(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules in order, the first repeated), or ``None``."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target, [*path, target])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    """The check above can fail: a cycle of three modules is reported in order."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_nothing_below_the_command_line_parses_options():
    """Settings reach the library as objects built by ``ai_filters/cli``; no module below it
    imports argparse."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "cli" and "argparse" in third_party_or_std(path)
    ]
    assert not offenders, f"import argparse below ai_filters/cli: {offenders}"


def test_only_the_command_line_imports_it():
    """``ai_filters/cli`` is on top: neither the package nor the pipeline scripts import it (the
    options they share live in the library as tables, ``engine/options.py`` and
    ``executors/options.py``)."""
    sources = [*PACKAGE.rglob("*.py"), *(ROOT / "pipelines").glob("*.py")]
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted(sources)
        if path.relative_to(ROOT).parts[:2] != ("ai_filters", "cli")
        for name in runtime_imports(path)
        if name.startswith(f"{PACKAGE.name}.cli")
    ]
    assert not offenders, "\n".join(offenders)


def third_party_or_std(path: Path) -> set[str]:
    """Top-level names of every non-package module ``path`` imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names - {PACKAGE.name}


def test_sizes():
    top_level = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top_level) <= MAX_TOP_LEVEL_MODULES, f"ai_filters/ holds {top_level}"
    sources = [*PACKAGE.rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    long = {
        str(path.relative_to(ROOT)): lines
        for path in sorted(sources)
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"longer than {MAX_LINES} lines (split by concern): {long}"


@pytest.mark.parametrize(
    "module",
    [
        "ai_filters.fields",
        "ai_filters.documents",
        "ai_filters.engine.batching",
        "ai_filters.engine.heads_file",
        "ai_filters.selection.folder",
        "ai_filters.selection.report",
        "ai_filters.selection.status",
    ],
)
def test_reading_documents_and_records_imports_no_torch(module):
    """Document files, the field names and skip reasons, the selection folder and its records
    are read without torch (a status check or a report never pays for loading it)."""
    code = f"import sys, {module}; print(sorted({{'torch', 'transformers'}} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    assert loaded == "[]", f"importing {module} imports {loaded}"
