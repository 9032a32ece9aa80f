"""Imports point one way (README, "How it works"): read from the source with `ast`, so a
wrong import fails here before anyone has to notice it in a review.

- the core (db/, domain/, questionnaire/, summary/, exports/) never imports the web side
  (web/, the blueprints, cli/), so its rules run without a request;
- a blueprint never imports another blueprint's views (what they share lives in a module
  beside the views, e.g. ``auth/sessions.py``, or below them);
- no module imports itself back through others at import time.

An import under ``if TYPE_CHECKING:`` runs only in the type checker and is not counted.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "patientapp"
CORE = ("db", "domain", "questionnaire", "summary", "exports")
WEB_SIDE = ("web", "patient", "staff", "auth", "admin", "api", "cli")
BLUEPRINTS = ("patient", "staff", "auth", "admin", "api")


@dataclass(frozen=True)
class Import:
    target: str  # the module imported, e.g. "patientapp.web.context"
    line: int
    top_level: bool  # runs when the module is imported (not inside a function)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def resolve(module: str, path: Path, node: ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    """What `from X import a, b` imports: X.a where that is a module, else X itself."""
    if node.level:
        base = module.split(".")
        if path.name != "__init__.py":
            base.pop()
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    return [
        f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
        for alias in node.names
    ]


def imports_of(module: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """Every import of the app's own modules in one module, TYPE_CHECKING ones left out."""
    found: list[Import] = []

    def visit(node: ast.AST, top_level: bool) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for child in node.orelse:
                visit(child, top_level)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, top_level) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            targets = resolve(module, path, node, known)
            found.extend(Import(target, node.lineno, top_level) for target in targets)
        inside = top_level and not isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(path.read_text("utf-8")), True)
    return [i for i in found if i.target == "patientapp" or i.target.startswith("patientapp.")]


def package_of(module: str) -> str:
    """The first folder under patientapp/ ("" for patientapp/__init__.py itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def all_imports() -> dict[str, list[Import]]:
    known = modules()
    return {module: imports_of(module, path, known) for module, path in known.items()}


def test_the_modules_are_all_read():
    graph = all_imports()
    assert len(graph) > 40
    assert any(i.target == "patientapp.db.storage" for i in graph["patientapp.domain.visits"])


def test_the_core_never_imports_the_web_side():
    """db/, domain/, questionnaire/, summary/ and exports/ work without a request: they take
    the database, the time and the settings from their callers. (create_app, in
    patientapp/__init__.py, imports every blueprint, so it counts as the web side.)"""
    wrong = [
        f"{module} imports {i.target} (line {i.line})"
        for module, found in all_imports().items()
        if package_of(module) in CORE
        for i in found
        if package_of(i.target) in (*WEB_SIDE, "")
    ]
    assert wrong == [], "the core reaches up into the web side:\n" + "\n".join(wrong)


def test_no_blueprint_imports_another_blueprints_views():
    wrong = [
        f"{module} imports {i.target} (line {i.line})"
        for module, found in all_imports().items()
        if package_of(module) in BLUEPRINTS
        for i in found
        if package_of(i.target) in BLUEPRINTS
        and package_of(i.target) != package_of(module)
        and i.target.endswith(".views")
    ]
    assert wrong == [], "a blueprint imports another blueprint's views:\n" + "\n".join(wrong)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components: each group of modules that import each other
    (a module importing itself counts too)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_cycles_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    """Module-level imports only: an import inside a function runs after every module has
    loaded."""
    known = modules()
    graph = {
        module: {i.target for i in found if i.top_level and i.target in known} - {module}
        for module, found in all_imports().items()
    }
    assert cycles(graph) == []
