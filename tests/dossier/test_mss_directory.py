"""The MSSanté directory: import of the Annuaire Santé extract (one transaction, bad lines
reported and skipped, full import removes what the file no longer lists) and its search."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.audit import AuditEntry
from core.context import DB, SESSIONS
from core.errors import ValidationFailed
from dossier.models import MssDirectoryEntry
from dossier.mssdirectory.importer import import_file

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "mss_directory_extract.txt"
URL = "/api/v1/mss-directory"


def sample_lines() -> list[str]:
    return SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)


def write(tmp_path: Path, lines: list[str], name: str = "extract.txt") -> Path:
    path = tmp_path / name
    path.write_text("".join(lines), encoding="utf-8")
    return path


async def addresses(app) -> list[str]:
    async with app[DB].read() as s:
        return sorted((await s.execute(select(MssDirectoryEntry.address))).scalars())


async def search(client, **params) -> list[dict]:
    r = await client.get(URL, params=params)
    assert r.status == 200, await r.text()
    return await r.json()


async def test_import_then_search_by_name_rpps_specialty_and_commune(app, client, users):
    summary = await import_file(app[DB], SAMPLE)
    assert (summary.imported, summary.added, summary.removed, summary.bad) == (6, 6, 0, 0)
    await client.sign_in_as(users["requester"].id)
    # A name without its accents, in any case, finds it; the answer keeps them.
    hits = await search(client, q="helene lefevre")
    assert [h["address"] for h in hits] == ["helene.lefevre@test.mssante.fr"]
    assert hits[0]["last_name"] == "LEFÈVRE" and hits[0]["first_name"] == "Hélène"
    assert hits[0]["specialty"] == "Cardiologie et maladies vasculaires"
    assert hits[0]["commune"] == "Lyon" and hits[0]["rpps"] == "10000000011"
    assert [h["address"] for h in await search(client, q="GARCON")] == [
        "francois.garcon@test.mssante.fr"
    ]
    # RPPS: 11 digits or 8+RPPS, as a parameter or typed in the search field.
    for params in ({"rpps": "10000000037"}, {"rpps": "810000000037"}, {"q": "10000000037"}):
        assert [h["address"] for h in await search(client, **params)] == [
            "anais.nguyen@test.mssante.fr"
        ]
    # Specialty, accent-insensitive, and combined with a commune (name or postcode).
    cardio = await search(client, specialty="cardiologie")
    assert [h["address"] for h in cardio] == [
        "francois.garcon@test.mssante.fr",
        "helene.lefevre@test.mssante.fr",
    ]
    both = await search(client, specialty="Cardiologie", commune="marseille")
    assert [h["address"] for h in both] == ["francois.garcon@test.mssante.fr"]
    assert {h["address"] for h in await search(client, commune="saint etienne")} == {
        "anais.nguyen@test.mssante.fr",
        "cardiologie@chfictif.test.mssante.fr",
    }
    assert len(await search(client, commune="13")) == 2
    # Words of the free field may mix name, specialty and commune.
    hits = await search(client, q="cardiologie marseille")
    assert [h["address"] for h in hits] == ["francois.garcon@test.mssante.fr"]
    assert await search(client, q="nobody here") == []
    # An ADELI professional has no RPPS; the limit bounds the answer.
    assert (await search(client, q="zoe martin"))[0]["rpps"] == ""
    assert len(await search(client, q="test mssante", limit=2)) == 2


async def test_bad_queries_are_refused_with_problems(app, client, users):
    await client.sign_in_as(users["secretary"].id)
    for params, code in (
        ({}, "criteria_required"),
        ({"q": "a"}, "query_too_short"),
        ({"rpps": "1234"}, None),
        ({"limit": "0"}, None),
        ({"limit": "500"}, None),
        ({"q": "x" * 300}, None),
    ):
        r = await client.get(URL, params=params)
        assert r.status in (400, 422), (params, r.status)
        assert r.content_type == "application/problem+json"
        if code:
            assert (await r.json())["code"] == code


async def test_guests_and_strangers_cannot_search(app, client, make_client):
    await import_file(app[DB], SAMPLE)
    anon = await make_client()
    assert (await anon.get(URL, params={"q": "dubois"})).status == 401
    guest = await make_client()
    token, s = await app[SESSIONS].create(
        kind="guest", subject_id=uuid.uuid4(), stage="full", data={"label": "Mme Dupont"}
    )
    guest.client.session.cookie_jar.update_cookies({"consilium_session": token})
    guest.csrf = s.csrf_token
    r = await guest.get(URL, params={"q": "dubois"})
    assert r.status == 403 and r.content_type == "application/problem+json"


async def test_a_reimport_without_a_line_removes_that_mailbox_and_updates_the_others(app, tmp_path):
    await import_file(app[DB], SAMPLE)
    lines = sample_lines()
    kept = [line for line in lines if "jerome.dubois" not in line]
    kept = [line.replace("|Lyon|", "|Villeurbanne|") for line in kept]
    summary = await import_file(app[DB], write(tmp_path, kept))
    assert (summary.imported, summary.added, summary.updated, summary.removed) == (5, 0, 5, 1)
    assert "jerome.dubois@test.mssante.fr" not in await addresses(app)
    async with app[DB].read() as s:
        helene = await s.scalar(
            select(MssDirectoryEntry).where(
                MssDirectoryEntry.address == "helene.lefevre@test.mssante.fr"
            )
        )
        assert helene is not None and helene.commune == "Villeurbanne"
        rows = (
            await s.execute(select(AuditEntry).where(AuditEntry.action == "mss_directory.import"))
        ).scalars()
        assert [(r.details["imported"], r.details["removed"]) for r in rows] == [(6, 0), (5, 1)]


async def test_malformed_lines_are_reported_and_skipped(app, tmp_path):
    lines = sample_lines()
    bad = [
        *lines[:2],
        "PER|pas-une-adresse|8|10000000099|810000000099|M|FAUX|Faux\n",  # too few fields
        lines[2].replace("jerome.dubois@test.mssante.fr", "jerome dubois at nowhere"),
        lines[3].replace("|10000000037|", "|1000000003X|"),
        *lines[4:],
    ]
    summary = await import_file(app[DB], write(tmp_path, bad))
    assert summary.imported == 4 and summary.bad == 3
    assert [b.line for b in summary.bad_lines] == [3, 4, 5]
    assert "champs" in summary.bad_lines[0].reason
    assert "adresse" in summary.bad_lines[1].reason
    assert "RPPS" in summary.bad_lines[2].reason
    assert "jerome.dubois@test.mssante.fr" not in await addresses(app)


async def test_a_file_that_is_not_an_extract_changes_nothing(app, tmp_path):
    await import_file(app[DB], SAMPLE)
    before = await addresses(app)
    with pytest.raises(ValidationFailed) as e:
        await import_file(app[DB], write(tmp_path, ["nom;prenom;email\n", "a;b;c@d.fr\n"]))
    assert e.value.code == "not_an_mss_extract"
    # Only bad lines: refused, the directory is not emptied.
    lines = sample_lines()
    with pytest.raises(ValidationFailed) as e:
        await import_file(app[DB], write(tmp_path, [lines[0], "PER|x|y\n"]))
    assert e.value.code == "nothing_to_import"
    assert await addresses(app) == before
    async with app[DB].read() as s:
        assert await s.scalar(select(func.count()).select_from(MssDirectoryEntry)) == 6


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_command_imports_and_prints_a_summary(settings, tmp_path, monkeypatch, capsys):
    from core.cli import main
    from core.migrate import upgrade

    upgrade(settings.database_url)
    monkeypatch.setenv("CONSILIUM_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONSILIUM_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("CONSILIUM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CONSILIUM_DEV", "1")
    lines = sample_lines()
    path = write(tmp_path, [*lines[:3], "PER|broken\n", *lines[3:]])
    assert main(["mss-directory", "import", str(path)]) == 0
    out = capsys.readouterr()
    assert "6 addresses (6 added, 0 updated, 0 removed); 1 bad lines skipped of 7" in out.out
    assert "line 4:" in out.err
