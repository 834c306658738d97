"""The package's map: subpackages in layers, each importing only from the layers before it
(function-level imports included), and no module much over the size that reads in one sitting."""

from __future__ import annotations

import ast

from conftest import ROOT

LAYERS = [
    {"evo", "evo.errors", "evo.status", "evo.config", "evo.shipped"},
    {"evo.target"},
    {"evo.evaluate"},
    {"evo.mutate"},
    {"evo.search"},
    {"evo.store"},
    {"evo.run"},
    {"evo.views"},
    {"evo.bench"},
    {"evo.cli", "evo.commands", "evo.__main__"},
]
MAX_LINES = 320


def layer(module: str) -> int:
    """The layer of a module: that of its subpackage, or its own for a top-level module."""
    parts = module.split(".")
    for name in (".".join(parts[:2]), module):
        for index, members in enumerate(LAYERS):
            if name in members:
                return index
    raise AssertionError(
        f"{module} is in no layer: add it to LAYERS and to docs/architecture.md's layout"
    )


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted((ROOT / "evo").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text())
    return found


def imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "evo":
            # `from evo.store import checkpoint` imports evo.store and evo.store.checkpoint
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "evo"}
    return names


def test_every_import_goes_down_the_layers():
    upward = [
        f"{module} -> {target}"
        for module, tree in modules().items()
        for target in imported(tree)
        if layer(target) > layer(module)
    ]
    assert upward == []


def test_the_engine_never_imports_the_benchmarks():
    reached, todo = set(), ["evo.run.engine"]
    trees = modules()
    while todo:
        module = todo.pop()
        if module in reached or module not in trees:
            continue
        reached.add(module)
        todo += imported(trees[module])
    assert "evo.run.engine" in reached and not any(m.startswith("evo.bench") for m in reached)


def test_no_two_modules_import_each_other():
    """Within a layer too, type-checking imports included: a module that needs what imports it
    says so with a Protocol (evo.run.seed.Engine)."""
    trees = modules()
    edges = {module: imported(tree) & set(trees) - {module} for module, tree in trees.items()}
    cycles = []
    for start in trees:  # a depth-first walk from each module, back to it
        stack = [(start, [start])]
        while stack:
            module, path = stack.pop()
            for target in edges[module]:
                if target == start:
                    cycles.append(" -> ".join([*path, start]))
                elif target not in path and target > start:  # each cycle once, from its least
                    stack.append((target, [*path, target]))
    assert cycles == []


def test_modules_read_in_one_sitting():
    long = {
        path.relative_to(ROOT).as_posix(): lines
        for path in (ROOT / "evo").rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
