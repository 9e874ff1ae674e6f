"""Stamping a signature on a list of pages (issue 12, item 7): 100,000 entries kept a server
thread busy until the process was killed. The list is bounded (500), each page once and ≥ 1,
and within the PDF (422 ``bad_pages`` before anything is drawn); the stamping runs in the
bounded worker process of core.heavy, never on a server thread."""

from __future__ import annotations

import pymupdf
import pytest

import core.heavy
from core.context import DB
from tests.support.documents import make_dossier, pdf_bytes, signature_png

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@sqlite_only
async def test_stamp_pages_are_bounded_unique_and_within_the_document(app, client, users):
    dossier_id = await make_dossier(app[DB], users)
    await client.sign_in_as(users["expert"].id)
    r = await client.put(
        "/api/v1/me/signature", data=signature_png(), headers={"Content-Type": "image/png"}
    )
    assert r.status == 200, await r.text()
    docs = f"/api/v1/dossiers/{dossier_id}/documents"
    r = await client.post(f"{docs}?filename=ordonnance.pdf", data=pdf_bytes(3))
    assert r.status == 201, await r.text()
    original = await r.json()
    stamp_url = f"{docs}/{original['id']}/stamp"
    at = {"x": 0.1, "y": 0.1, "width": 0.2}

    for pages in ([1, 1], [0], [-2], [], list(range(1, 502)), [1] * 100_000):
        r = await client.post(stamp_url, json={"pages": pages, **at})
        assert r.status == 422, (pages[:5], await r.text())
        body = await r.json()
        assert r.content_type == "application/problem+json"
        assert any("pages" in e["loc"] for e in body["errors"]), body
    r = await client.post(stamp_url, json={"pages": [2, 4, 9], **at})
    assert r.status == 422 and (await r.json())["code"] == "bad_pages"
    assert "4, 9" in (await r.json())["detail"]
    # Nothing was stamped: the document still has its one version.
    r = await client.get(docs)
    listed = [d for c in (await r.json())["categories"] for d in c["documents"]]
    assert [d["source"] for d in listed] == ["upload"]

    r = await client.post(stamp_url, json={"pages": [3, 1], **at})
    assert r.status == 201, await r.text()
    assert core.heavy._pool is not None  # drawn in the worker process
    r = await client.get(f"{docs}/{(await r.json())['id']}/content")
    with pymupdf.open(stream=await r.read(), filetype="pdf") as doc:
        assert [len(p.get_image_info()) for p in doc] == [1, 0, 1]
