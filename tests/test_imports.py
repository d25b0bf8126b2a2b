"""The kit's own modules: folders import one way, no import cycle, the check-time path apart from the generator, a
plugin that costs nothing."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys

import pytest

from tests.helpers import ROOT

PACKAGES = ("conformance", "reference", "vectors", "spec")
#: What runs when a candidate is checked; none of it may import the scenario table or the generator.
CHECK_TIME = ("conformance.load", "conformance.drive", "conformance.judge", "conformance.diagnosis",
              "conformance.report", "conformance.adapters", "conformance.plugin", "conformance.collect",
              "conformance.session", "reference")

#: The layers, bottom first: a module imports only from its own layer or those below it.  ``reference`` (the
#: oracle) is the leaf of everything and needs NumPy alone; the leaves of the kit are its shared vocabulary; the
#: plugin, collection, session, CLI and the property tier sit on top.
LAYERS = (
    ("reference",),
    ("conformance.dtypes", "conformance.features", "conformance.clauses", "conformance.errors", "conformance.inputs"),
    ("conformance.judge",),
    ("conformance.load",),
    ("vectors", "spec"),
    ("conformance.adapters",),
    ("conformance.drive",),
    ("conformance.diagnosis",),
    ("conformance.report",),
    ("conformance",),  # everything else: plugin, collect, session, cli, property, pipe_port, expectations, suite
)


def _modules() -> dict[str, object]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """Every project module ``name`` imports, at module level or inside a function."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{alias.name}" for alias in node.names}
            found |= subs
            if not subs <= MODULES.keys():  # ``from package import module`` runs the package's __init__ too, not more
                found.add(node.module)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def layer_of(module: str) -> int:
    """The index in ``LAYERS`` of the most specific prefix that names ``module``."""
    best = max((len(prefix), i) for i, layer in enumerate(LAYERS) for prefix in layer
               if module == prefix or module.startswith(prefix + "."))
    return best[1]


def test_every_module_has_a_layer():
    assert all(layer_of(m) >= 0 for m in MODULES)
    assert layer_of("conformance.plugin") == len(LAYERS) - 1 and layer_of("conformance.judge.compare") == 2


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module):
    """No module reaches up to a layer above its own: ``reference`` imports nothing of the kit."""
    upward = sorted(dep for dep in GRAPH[module] if layer_of(dep) > layer_of(module))
    assert not upward, f"{module} (layer {layer_of(module)}) imports from a layer above it: {upward}"


def test_the_oracle_needs_numpy_alone():
    """``reference/`` imports NumPy and the standard library (mpmath for its twin), nothing else."""
    allowed = {"numpy", "mpmath", "reference", "__future__"}
    for name, path in MODULES.items():
        if not name.startswith("reference"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            roots = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            for root in (r.split(".")[0] for r in roots):
                assert root in allowed or root in sys.stdlib_module_names, f"{name} imports {root}"


def test_no_module_imports_itself_through_others():
    try:
        list(graphlib.TopologicalSorter(GRAPH).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


#: The property tier builds its vectors from scenarios with the generator, by design; the plugin loads it only
#: for ``--tier=property``, so the walk from a check-time module stops there.
GENERATING_TIER = {"conformance.property"}


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in GRAPH[todo.pop()] - GENERATING_TIER:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith(CHECK_TIME)])
def test_the_check_time_path_does_not_import_the_generator(module):
    assert not _reachable(module) & {"vectors.generate", "vectors.scenarios"}


def test_loading_the_plugin_imports_no_numpy():
    code = "import sys, conformance.plugin; print(sorted(m for m in ('numpy', 'reference', 'yaml') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
