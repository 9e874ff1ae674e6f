"""One write path per domain action: route and Socket.IO handlers of every package only
translate. A handler that opens a write transaction itself (``db.write()``) or writes an audit
row writes outside the action that checks, audits and emits after commit; this test names each
one."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "rooms", "chat", "rtc", "dossier", "ops", "ui")
# Decorators that register a handler: ``@api.get(...)``, ``@live.event(...)``, ``@sio.on(...)``.
HANDLER_DECORATORS = {"get", "post", "put", "patch", "delete", "head", "route", "event", "on"}


def _is_handler(fn: ast.AsyncFunctionDef | ast.FunctionDef) -> bool:
    for dec in fn.decorator_list:
        call = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(call, ast.Attribute) and call.attr in HANDLER_DECORATORS:
            return True
    return False


def _opens_write(fn: ast.AST) -> bool:
    """``db.write()`` (a transaction of its own) or ``audit.record(...)`` (a row outside the
    action's transaction). ``audit.record_now`` stays allowed: a refusal is audited where it
    is decided, in a transaction of its own, because nothing else is written."""
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr == "write" and not node.args and not node.keywords:
            return True
        if node.func.attr == "record" and ast.unparse(node.func.value) == "audit":
            return True
    return False


def handlers_opening_write_transactions() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
                    and _is_handler(node)
                    and _opens_write(node)
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    return found


def test_the_detector_finds_a_handler_that_writes():
    tree = ast.parse(
        "@api.post('/x')\nasync def h(request):\n    async with db.write() as uow:\n        pass\n"
    )
    fn = tree.body[0]
    assert isinstance(fn, ast.AsyncFunctionDef)
    assert _is_handler(fn) and _opens_write(fn)
    tree = ast.parse("@live.event('x:y')\nasync def h(live, conn):\n    audit.record(s, 'x')\n")
    fn = tree.body[0]
    assert isinstance(fn, ast.AsyncFunctionDef)
    assert _is_handler(fn) and _opens_write(fn)
    tree = ast.parse("@routes.get('/x')\nasync def h(request):\n    return await do(db)\n")
    fn = tree.body[0]
    assert isinstance(fn, ast.AsyncFunctionDef)
    assert _is_handler(fn) and not _opens_write(fn)


def test_no_route_or_socket_handler_opens_a_write_transaction():
    assert handlers_opening_write_transactions() == []
