"""HTTP route of the MSSanté directory (signed-in professionals only: guests are refused)."""

from __future__ import annotations

from aiohttp import web

from core.context import DB
from dossier.mssdirectory import search as directory
from dossier.mssdirectory.schemas import MssDirectoryEntryOut, MssDirectoryQuery
from dossier.web import RouteTable

routes = RouteTable()


@routes.get(
    "/mss-directory",
    query=MssDirectoryQuery,
    response=list[MssDirectoryEntryOut],
    tags=["mss directory"],
)
async def search_mss_directory(
    request: web.Request, query: MssDirectoryQuery
) -> list[MssDirectoryEntryOut]:
    """Search the MSSanté directory by words of a name, RPPS, specialty or commune (accents
    and case ignored); at least one criterion."""
    async with request.app[DB].read() as s:
        hits = await directory.search(
            s,
            q=query.q or "",
            rpps=query.rpps or "",
            specialty=query.specialty or "",
            commune=query.commune or "",
            limit=query.limit,
        )
    return [MssDirectoryEntryOut.of(e) for e in hits]
