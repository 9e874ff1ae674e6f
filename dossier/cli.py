"""``consilium mss-directory import FILE``: the dossier package's subcommands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any


def _mss_import(args: argparse.Namespace) -> int:
    from core import audit
    from core.config import load_settings
    from core.db import Database
    from core.errors import Problem
    from core.events import EventBus
    from dossier.mssdirectory.importer import ImportSummary, import_file

    settings = load_settings()
    audit.configure_chain(settings.secret_key)
    path = Path(args.file)
    if not path.is_file():
        print(f"consilium: no file {path}", file=sys.stderr)
        return 2

    async def go() -> ImportSummary:
        db = Database(settings.database_url, EventBus())
        try:
            return await import_file(db, path)
        finally:
            await db.close()

    try:
        s = asyncio.run(go())
    except Problem as p:
        print(f"consilium: {p.detail or p.title}", file=sys.stderr)
        for bad in p.extra.get("bad_lines", []):
            print(f"  line {bad['line']}: {bad['reason']}", file=sys.stderr)
        return 1
    for bad in s.bad_lines:
        print(f"  line {bad.line}: {bad.reason}", file=sys.stderr)
    if s.bad > len(s.bad_lines):
        print(f"  … and {s.bad - len(s.bad_lines)} more bad lines", file=sys.stderr)
    print(
        f"MSSanté directory: {s.imported} addresses ({s.added} added, {s.updated} updated, "
        f"{s.removed} removed); {s.bad} bad lines skipped of {s.lines}."
    )
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("mss-directory", help="the MSSanté directory (Annuaire Santé extract)")
    cmds = p.add_subparsers(dest="mss_directory_cmd", required=True)
    i = cmds.add_parser(
        "import",
        help="replace the directory by an « Extraction des adresses MSSanté » file "
        "(pipe-separated, with its header); bad lines are reported and skipped",
    )
    i.add_argument("file")
    i.set_defaults(fn=_mss_import)
