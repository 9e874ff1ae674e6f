"""One write path: a dossier route translates HTTP to an action; the action opens the
transaction (check, write, audit row, events after commit). A route that opens
``db.write()`` itself is a second write path this test names."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dossier"


def _opens_a_write(fn: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "write"
        and not n.args
        and not n.keywords
        for n in ast.walk(fn)
    )


def _is_route(fn: ast.AsyncFunctionDef | ast.FunctionDef) -> bool:
    for d in fn.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id in ("routes", "api")
        ):
            return True
    return False


def route_handlers_that_write() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_routes_module = path.name == "routes.py"
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.AsyncFunctionDef | ast.FunctionDef):
                continue
            if (in_routes_module or _is_route(fn)) and _opens_a_write(fn):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{fn.lineno} {fn.name}")
    return found


def test_no_dossier_route_opens_a_write_transaction():
    assert route_handlers_that_write() == []


def test_the_check_sees_a_route_that_writes(tmp_path):
    src = (
        "@routes.post('/x')\n"
        "async def h(request):\n"
        "    async with request.app[DB].write() as uow:\n"
        "        pass\n"
    )
    fn = ast.parse(src).body[0]
    assert isinstance(fn, ast.AsyncFunctionDef)
    assert _is_route(fn) and _opens_a_write(fn)
