"""Routes and socket handlers of rooms and chat only translate: no transaction, no audit row of
their own (the one write path of each action is in ``rooms/actions.py``, ``chat/actions.py``,
``rooms/invitations.py``, ``rooms/attachments.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDLER_MODULES = [
    "rooms/api.py",
    "rooms/attachments_api.py",
    "rooms/lobby.py",
    "rooms/moderation.py",
    "rooms/participants.py",
    "rooms/live.py",
    "chat/api.py",
    "chat/live.py",
]


def writes_in(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr, owner = node.func.attr, node.func.value
        opens_transaction = attr == "write" and not node.args
        audits = attr in ("record", "record_now") and ast.unparse(owner) == "audit"
        if opens_transaction or audits:
            found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_route_or_socket_handler_of_rooms_or_chat_writes_itself():
    found = [w for m in HANDLER_MODULES for w in writes_in(ROOT / m)]
    assert found == []


def test_the_check_finds_a_handler_that_writes(tmp_path):
    bad = tmp_path / "handler.py"
    bad.write_text(
        "async def h(db, audit):\n"
        "    async with db.write() as uow:\n"
        "        audit.record(uow.session, 'x')\n"
    )
    assert len(writes_in(bad)) == 2
