"""A target's static rules, checked before a variant costs a second of evaluation.

Standard-library `ast` only, so that every evaluator (a bare GPU machine too) can check. The
rules see what the code says, not what it does at run time: `getattr(torch, "lo" + "ad")` passes.
They stop careless code and shortcuts, not a determined adversary (see the threat model in
docs/operations.md).
"""

from __future__ import annotations

import ast

from evo.target import Rules


def violations(rules: Rules, sources: dict[str, str]) -> list[str]:
    """Every broken rule across a variant's mutable files, as `file:line: what` lines."""
    found: list[str] = []
    defined: set[str] = set()
    for filename, source in sorted(sources.items()):
        try:
            tree = ast.parse(source, filename)
            compile(tree, filename, "exec")  # ast.parse accepts some code compile() rejects
        except SyntaxError as e:
            found.append(f"{filename}:{e.lineno}: does not compile: {e.msg}")
            continue
        defined |= _top_level_names(tree)
        found += [f"{filename}:{line}: {what}" for line, what in _forbidden_uses(rules, tree)]
    if not any(": does not compile: " in problem for problem in found):
        found += [
            f"required name {name!r} is no longer defined at the top level"
            for name in rules.required_names
            if name not in defined
        ]
    return found


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _forbidden_uses(rules: Rules, tree: ast.Module) -> list[tuple[int, str]]:
    uses: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules, identifiers = [a.name for a in node.names], []
        elif isinstance(node, ast.ImportFrom):
            modules, identifiers = [node.module or ""], [a.name for a in node.names]
        elif isinstance(node, ast.Name):
            modules, identifiers = [], [node.id]
        elif isinstance(node, ast.Attribute):
            modules, identifiers = [], [node.attr]
        else:
            continue
        uses |= {
            (node.lineno, f"imports {module!r}, which the target forbids")
            for module in modules
            if any(module == f or module.startswith(f + ".") for f in rules.forbidden_imports)
        }
        uses |= {
            (node.lineno, f"uses {name!r}, which the target forbids")
            for name in identifiers
            if name in rules.forbidden_names
        }
    return sorted(uses)
