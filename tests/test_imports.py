"""The kit's own modules: no import cycle, the check-time path apart from the generator, a plugin that costs nothing."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys

import pytest

from tests.helpers import ROOT

PACKAGES = ("conformance", "reference", "vectors", "spec")
#: What runs when a candidate is checked; none of it may import the scenario table or the generator.
CHECK_TIME = ("conformance.loader", "conformance.runner", "conformance.plugin", "conformance.items",
              "conformance.compare", "conformance.tolerance", "conformance.state", "conformance.record",
              "conformance.capabilities", "conformance.diagnose", "conformance.vector_format", "conformance.report",
              "conformance.adapters", "reference")


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
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


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
