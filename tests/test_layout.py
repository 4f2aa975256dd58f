"""The layout docs/architecture.md describes: imports point one way between the packages and between search's
subpackages, no module imports itself in a circle, and contract's records are its own.

Read from the source with ``ast``: nothing is imported, so a violation is reported even in code no test runs.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Which of the project's packages each package may import (docs/architecture.md).
MAY_IMPORT = {
    "contract": set(),
    "t2t": {"contract"},
    "trainables": {"contract", "t2t"},
    "analysis": {"contract"},
    "search": {"contract", "t2t", "trainables", "analysis"},
}
# Which of search's subpackages each may import (docs/architecture.md); search's top modules (the entry points and
# the driver) may import any of them.
SEARCH_MAY_IMPORT = {
    "patches": set(),
    "disk": set(),
    "cluster": set(),
    "study": {"disk"},
    "tracking": {"disk"},
    "plugins": {"tracking"},
    "population": {"study", "tracking"},
    "experiment": {"study", "tracking", "plugins", "disk", "cluster", "patches", "population"},
}
# Strings of contract whose value is also someone else's own name, so other code spells it too.
SHARED_WITH_OTHERS = {
    "trial_id",  # Ray Tune's own result key (ray.tune.result.TRIAL_ID) and the report tables' column
    "model",  # the training config's model section and the state-dict key of a checkpoint's weights
}


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project's modules ``path`` imports anywhere in it (functions included): ``from a import b`` is module
    ``a.b`` where that is a module, else ``a``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                      for a in node.names}  # fmt: skip
    return names & known


def _graph() -> dict[str, set[str]]:
    paths = {_module(p): p for package in MAY_IMPORT for p in _files(package)}
    return {module: _imported_modules(path, set(paths)) - {module} for module, path in paths.items()}


def _imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (relative imports resolved to the project package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(path.relative_to(ROOT).parts[0] if node.level else (node.module or "").split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_imports_point_one_way(package):
    project = set(MAY_IMPORT)
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _files(package)
        for name in _imports(path) & project - {package} - MAY_IMPORT[package]
    }
    assert not wrong, sorted(wrong)


def test_contract_imports_only_the_standard_library():
    outside = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _files("contract")
        for name in _imports(path) - {"contract", "__future__"}
        if name not in sys.stdlib_module_names
    }
    assert not outside, sorted(outside)


def _constants(path: Path) -> dict[str, str]:
    """Module-level ``NAME = "string"`` of a contract module."""
    out = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            out[node.value.value] = node.targets[0].id
    return out


def test_no_other_package_spells_a_record_of_the_contract():
    records = {}
    for module in ("tracking", "files", "status"):
        records.update({v: f"contract.{module}.{n}" for v, n in _constants(ROOT / "contract" / f"{module}.py").items()})
    records = {v: name for v, name in records.items() if v not in SHARED_WITH_OTHERS}
    spelled = set()
    for package in set(MAY_IMPORT) - {"contract"}:
        for path in _files(package):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in records:
                    spelled.add(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r} (use {records[node.value]})")
    assert not spelled, sorted(spelled)


def test_no_module_imports_itself_in_a_circle():
    graph, circles = _graph(), []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                circles.append(" -> ".join([*path[path.index(other) :], other]))
            elif other not in state:
                visit(other, [*path, other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, circles


def test_search_subpackages_import_one_way():
    wrong = set()
    for module, imported in _graph().items():
        parts = module.split(".")
        if parts[0] != "search" or len(parts) < 3:
            continue  # the entry points and the driver may import every subpackage
        for other in imported:
            theirs = other.split(".")
            if theirs[0] == "search" and len(theirs) > 2 and theirs[1] != parts[1]:
                if theirs[1] not in SEARCH_MAY_IMPORT[parts[1]]:
                    wrong.add(f"{module} imports {other}")
            elif theirs[0] == "search" and len(theirs) == 2 and theirs[1] not in SEARCH_MAY_IMPORT:
                wrong.add(f"{module} imports {other} (a top module)")
    assert not wrong, sorted(wrong)


def test_every_search_subpackage_is_in_the_rule():
    packages = {p.name for p in (ROOT / "search").iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(SEARCH_MAY_IMPORT)


# Methods a library calls, documented by the library's own base class (Tune's callbacks, searchers, schedulers and
# loggers, logging's filters, Optuna's journal backend, torch's modules).
LIBRARY_HOOKS = {
    "on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error", "on_trial_recover", "on_step_end",
    "on_checkpoint", "log_trial_result", "suggest", "save", "restore", "set_search_properties", "filter",
    "append_logs", "forward", "extra_repr",
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_every_public_definition_says_what_a_caller_needs(package):
    undocumented = []
    for path in _files(package):
        for node in ast.parse(path.read_text()).body:
            public_class = isinstance(node, ast.ClassDef) and not node.name.startswith("_")
            members = node.body if public_class else []
            for item in [node, *members]:
                if not isinstance(item, (ast.FunctionDef, ast.ClassDef)) or item.name.startswith("_"):
                    continue
                setter = any(isinstance(d, ast.Attribute) and d.attr == "setter" for d in item.decorator_list)
                if item.name not in LIBRARY_HOOKS and not setter and not ast.get_docstring(item):
                    undocumented.append(f"{path.relative_to(ROOT)}:{item.lineno} {item.name}")
    assert not undocumented, undocumented
