"""The packages depend on each other one way only (ARCHITECTURE.md's table): a cycle or an
upward import is a design error this test names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {
    "core": set(),
    "rooms": {"core"},
    "chat": {"core", "rooms"},
    "rtc": {"core", "rooms"},
    "dossier": {"core", "rooms"},
    # metrics read the live layer and the SFU; webhooks and API keys act through rooms
    "ops": {"core", "rooms", "chat", "rtc", "dossier"},
    "ui": {"core"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package):
    wrong = {}
    for path in (ROOT / package).rglob("*.py"):
        bad = imported_packages(path) - ALLOWED[package] - {package}
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package])}: {wrong}"


# -- no import cycle between the modules of one package --------------------------------------

# Cycles found when this check was written, in packages whose owners untangle them: the test
# accepts exactly these (a new cycle, or one of these growing, still fails).
KNOWN_CYCLES: dict[str, list[set[str]]] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def runtime_imports(
    body: list[ast.stmt], *, in_functions: bool
) -> list[ast.Import | ast.ImportFrom]:
    """The imports that run: at module level (and, with ``in_functions``, those inside
    functions too), never those under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if ast.unparse(node.test) not in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                found += runtime_imports(node.body, in_functions=in_functions)
            found += runtime_imports(node.orelse, in_functions=in_functions)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if in_functions:
                found += runtime_imports(node.body, in_functions=in_functions)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    found += runtime_imports(
                        [child] if isinstance(child, ast.stmt) else child.body,
                        in_functions=in_functions,
                    )
    return found


def module_graph(package: str, *, in_functions: bool = False) -> dict[str, set[str]]:
    """module → the modules of the same package it imports at module level (with
    ``in_functions``, also from inside its functions)."""
    paths = {module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in paths}
    for mod, path in paths.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in runtime_imports(tree.body, in_functions=in_functions):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in graph else base)
            for t in targets:
                while t and t not in graph:  # `import a.b.c` of a name inside a.b
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A readable path a → b → … → a through one strongly connected component."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(graph[path[-1]] & members)
        back = [n for n in nxt if n == start]
        if back and len(path) > 1:
            return [*path, start]
        fresh = [n for n in nxt if n not in seen]
        if not fresh:  # close the loop on the first module already on the path
            target = next(n for n in nxt if n in seen)
            return [*path[path.index(target) :], target]
        path.append(fresh[0])
        seen.add(fresh[0])


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_import_cycle_inside_package(package):
    graph = module_graph(package)
    known = KNOWN_CYCLES.get(package, [])
    new = [c for c in cycles(graph) if set(c) not in known]
    assert not new, f"{package} has import cycles: " + "; ".join(
        " → ".join(one_cycle(graph, c)) for c in new
    )


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_import_cycle_hidden_by_a_late_import(package):
    """An import moved into a function to dodge a cycle leaves the cycle in the design."""
    graph = module_graph(package, in_functions=True)
    known = KNOWN_CYCLES.get(package, [])
    new = [c for c in cycles(graph) if set(c) not in known]
    assert not new, f"{package} has import cycles closed by late imports: " + "; ".join(
        " → ".join(one_cycle(graph, c)) for c in new
    )


def test_cycle_finder_names_a_cycle():
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert cycles(graph) == [["p.a", "p.b", "p.c"]]
    assert one_cycle(graph, ["p.a", "p.b", "p.c"]) == ["p.a", "p.b", "p.c", "p.a"]
    assert cycles({"p.a": {"p.b"}, "p.b": set()}) == []
