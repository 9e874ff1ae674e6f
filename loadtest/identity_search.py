"""Identity search at the scale of a region: N identities on PostgreSQL, M searches.

Creates its own database (``consilium_bench`` by default, dropped at the end unless
``--keep``), migrates it, and seeds identities with COPY (asyncpg
``copy_records_to_table``): common French surnames and first names (with their accents),
invented surnames for the long tail, used names, several first names, birth dates over a
century. Then:

1. **Match rate on a sample**: with the first ``--sample-size`` identities only, each of
   ``--sample`` queries runs through today's search (:func:`search`, candidates picked in
   the database) and through the former one (every visible identity scored in Python); it
   prints how many answers are the same (same identities, same rates, same order).
2. **Latency**: with all N identities, ``--searches`` queries run through the real search
   function of the patients page (:func:`dossier.identity.patients.search_patients`, the
   audited one) as an admin (sees every identity: the worst case) and as a practitioner
   who created them all (the visibility clause in SQL); p50/p95/p99 and how often the
   identity a query was made from is among the answers.

Queries are made from a seeded identity: typos (a letter changed, dropped, doubled or two
swapped), accents dropped, first and last name swapped, the start of a name, with the birth
date (sometimes with its day and month swapped) half of the time.

    nice -n 10 .venv/bin/python -m loadtest.identity_search \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

(``--identities 1000000 --searches 500 --sample 200 --sample-size 20000`` by default;
the figures in docs/dossier.md were taken with ``--sample 60 --searches 200``.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
from sqlalchemy import select

from core.accounts import Role, create_user
from core.db import Database
from core.events import EventBus
from core.migrate import upgrade
from core.principal import Principal
from dossier.identity.patients import (
    SHOW_FROM,
    SIMILAR_FROM,
    Criteria,
    fold_for_matching,
    match_rate,
    search,
    search_patients,
)
from dossier.models import Patient
from dossier.permissions import visible_patients

SURNAMES = """MARTIN BERNARD THOMAS PETIT ROBERT RICHARD DURAND DUBOIS MOREAU LAURENT SIMON
MICHEL LEFÈVRE LEROY ROUX DAVID BERTRAND MOREL FOURNIER GIRARD BONNET DUPONT LAMBERT FONTAINE
ROUSSEAU VINCENT MÜLLER LEFÈBVRE FAURE ANDRÉ MERCIER BLANC GUÉRIN BOYER GARNIER CHEVALIER
FRANÇOIS LEGRAND GAUTHIER GARCIA PERRIN ROBIN CLÉMENT MORIN NICOLAS HENRY ROUSSEL MATHIEU
GAUTIER MASSON MARCHAND DUVAL DENIS DUMONT MARIE LEMAIRE NOËL MEYER DUFOUR MEUNIER BRUN BLANCHARD
GIRAUD JOLY RIVIÈRE LUCAS BRUNET GAILLARD BARBIER ARNAUD MARTINEZ GÉRARD ROCHE RENARD SCHMITT
ROY LEROUX COLIN VIDAL CARON PICARD ROGER FABRE AUBERT LEMOINE RENAUD DUMAS LACROIX OLIVIER
PHILIPPE BOURGEOIS PIERRE BENOÎT REY LECLERC PAYET ROLLAND LECLERCQ GUILLAUME LECOMTE LOPEZ
JEAN DUPUY GUILLOT HUBERT BERGER CARPENTIER SANCHEZ DUPUIS MOULIN LOUIS DESCHAMPS HUET VASSEUR
PEREZ BOUCHER FLEURY ROYER KLEIN JACQUET ADAM PARIS POIRIER MARTY AUBRY GUYOT CARRÉ CHARLES
RENAULT CHARPENTIER MÉNARD MAILLARD BARON BERTIN BAILLY HERVÉ SCHNEIDER FERNANDEZ LE GALL
COLLET LÉGER BOUVIER JULIEN PRÉVOST MILLET PERROT DANIEL LE ROUX COUSIN GERMAIN BRETON BESSON
LANGLOIS RÉMY LE GOFF PELLETIER LÉVÊQUE PERRIER LEBLANC BARRÉ LEBRUN MARCHAL WEBER MALLET
HAMON BOULANGER JACOB MONNIER MICHAUD RODRIGUEZ GUICHARD GILLET ÉTIENNE GRONDIN POULAIN TESSIER
CHEVALLIER COLLIN CHAUVIN DA SILVA BOUCHET GAY LEMAÎTRE BENARD MARÉCHAL HUMBERT REYNAUD ANTOINE
HOARAU PERRET BARTHÉLEMY CORDIER PICHON LEJEUNE GILBERT LAMY DELAUNAY PASQUIER CARLIER LAPORTE
D'ALMEIDA LEFEBVRE-DESNOUETTES""".replace("LE GALL", "LE_GALL")

FEMALE = [
    "Marie",
    "Nathalie",
    "Isabelle",
    "Sylvie",
    "Catherine",
    "Martine",
    "Christine",
    "Françoise",
    "Valérie",
    "Sandrine",
    "Stéphanie",
    "Véronique",
    "Sophie",
    "Céline",
    "Chantal",
    "Patricia",
    "Anne",
    "Brigitte",
    "Julie",
    "Monique",
    "Aurélie",
    "Nicole",
    "Laurence",
    "Émilie",
    "Annie",
    "Hélène",
    "Jacqueline",
    "Caroline",
    "Corinne",
    "Élodie",
    "Virginie",
    "Audrey",
    "Dominique",
    "Sarah",
    "Mélanie",
    "Camille",
    "Émma",
    "Léa",
    "Chloé",
    "Manon",
    "Inès",
    "Jade",
    "Louise",
    "Alice",
    "Lina",
    "Zoé",
    "Léna",
    "Anaïs",
    "Océane",
    "Clémence",
    "Maëlys",
    "Noémie",
    "Éloïse",
    "Agnès",
    "Béatrice",
    "Geneviève",
    "Josiane",
    "Odile",
    "Solène",
    "Gaëlle",
    "Lucie",
    "Lucy",
    "Maïté",
    "Cécile",
    "Joëlle",
    "Danièle",
    "Mireille",
    "Yvette",
    "Ginette",
    "Paulette",
    "Colette",
    "Margaux",
    "Justine",
    "Pauline",
    "Charlotte",
    "Juliette",
    "Lou",
    "Romane",
    "Ambre",
    "Rose",
    "Anna",
    "Mathilde",
    "Capucine",
    "Salomé",
]

MALE = [
    "Jean",
    "Philippe",
    "Michel",
    "Alain",
    "Patrick",
    "Nicolas",
    "Christophe",
    "Pierre",
    "Christian",
    "Éric",
    "Frédéric",
    "Laurent",
    "Stéphane",
    "David",
    "Pascal",
    "Daniel",
    "Sébastien",
    "Julien",
    "Thierry",
    "Olivier",
    "Bernard",
    "Thomas",
    "Alexandre",
    "Gérard",
    "Didier",
    "Dominique",
    "Vincent",
    "François",
    "Bruno",
    "Guillaume",
    "Jérôme",
    "Jacques",
    "Marc",
    "Sylvain",
    "Antoine",
    "Lucas",
    "Hugo",
    "Louis",
    "Gabriel",
    "Arthur",
    "Raphaël",
    "Jules",
    "Adam",
    "Léo",
    "Noé",
    "Théo",
    "Maël",
    "Nathan",
    "Paul",
    "Tom",
    "Mathis",
    "Enzo",
    "Rémi",
    "Rémy",
    "Benoît",
    "Hervé",
    "Loïc",
    "Yannick",
    "Gaël",
    "Cédric",
    "Grégory",
    "Joël",
    "Mickaël",
    "Anthony",
    "Kévin",
    "Jérémy",
    "Quentin",
    "Baptiste",
    "Maxime",
    "Clément",
    "Valentin",
    "Romain",
    "Florian",
    "Timothée",
    "Aurélien",
    "Mathieu",
    "Matthieu",
    "Gilles",
    "Roger",
    "René",
    "Marcel",
    "André",
    "Henri",
    "Joseph",
    "Fernand",
    "Lucien",
    "Émile",
]

SYLLABLES = [
    "ber",
    "bou",
    "cha",
    "che",
    "dan",
    "del",
    "dur",
    "fau",
    "gal",
    "gri",
    "hen",
    "jac",
    "lam",
    "lan",
    "lar",
    "lec",
    "mar",
    "mau",
    "mon",
    "nor",
    "pel",
    "per",
    "pon",
    "quin",
    "ran",
    "ris",
    "rou",
    "sau",
    "ter",
    "tis",
    "val",
    "van",
    "vil",
    "lou",
    "gui",
    "mou",
    "cour",
    "bon",
    "duc",
    "fer",
]
ENDINGS = [
    "ard",
    "aud",
    "ault",
    "eau",
    "et",
    "ier",
    "in",
    "ot",
    "on",
    "oux",
    "ville",
    "court",
    "mont",
    "y",
    "é",
    "ès",
]

COLUMNS = [
    "id",
    "created_at",
    "updated_at",
    "birth_name",
    "used_name",
    "first_name",
    "first_names",
    "used_first_name",
    "sex",
    "birth_date",
    "birth_country",
    "birth_commune",
    "birth_postcode",
    "birth_insee_code",
    "addresses",
    "contacts",
    "ipp",
    "ins",
    "ins_status",
    "ins_oid",
    "identity_document",
    "insi_checked_at",
    "search_text",
    "created_by_id",
    "establishment",
]


SURNAME_LIST = [s.replace("_", " ") for s in SURNAMES.split()]
_CUM: dict[int, list[float]] = {}


def _zipf_choice(rng: random.Random, items: list[str]) -> str:
    # Rank r drawn with weight 1/(r+10): a few names are common, most much less.
    cum = _CUM.get(id(items))
    if cum is None:
        total = 0.0
        cum = []
        for r in range(len(items)):
            total += 1 / (r + 10)
            cum.append(total)
        _CUM[id(items)] = cum
    return rng.choices(items, cum_weights=cum)[0]


def invented_surname(rng: random.Random) -> str:
    return (
        "".join(rng.choices(SYLLABLES, k=rng.choice((1, 2, 2, 3)))) + rng.choice(ENDINGS)
    ).upper()


def identity(rng: random.Random) -> dict[str, object]:
    surnames = SURNAME_LIST
    female = rng.random() < 0.5
    first = _zipf_choice(rng, FEMALE if female else MALE)
    birth = _zipf_choice(rng, surnames) if rng.random() < 0.6 else invented_surname(rng)
    used = ""
    if female and rng.random() < 0.3:
        used = _zipf_choice(rng, surnames) if rng.random() < 0.6 else invented_surname(rng)
    firsts = [first, *rng.sample(FEMALE if female else MALE, k=rng.choice((0, 0, 1, 2)))]
    born = date(1925, 1, 1) + timedelta(days=rng.randrange(100 * 365))
    return {
        "birth_name": birth,
        "used_name": used,
        "first_name": first,
        "first_names": " ".join(dict.fromkeys(firsts)),
        "sex": "F" if female else "M",
        "birth_date": born,
    }


def search_text(p: dict[str, object]) -> str:
    parts = [p["birth_name"], p["used_name"], p["first_name"], p["first_names"], ""]
    return " ".join(dict.fromkeys(fold_for_matching(" ".join(map(str, parts))).split()))


def records(n: int, seed: int, creator: uuid.UUID, start: int = 0) -> Iterator[tuple[object, ...]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    for i in range(n):
        p = identity(rng)
        if i < start:
            continue
        yield (
            uuid.uuid4(),
            now,
            now,
            p["birth_name"],
            p["used_name"],
            p["first_name"],
            p["first_names"],
            "",
            p["sex"],
            p["birth_date"],
            "FRANCE",
            "",
            "",
            "",
            "[]",
            "[]",
            None,
            None,
            "provisional",
            None,
            "",
            None,
            search_text(p),
            creator,
            "Bench",
        )


# -- queries ----------------------------------------------------------------------------


def typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("change", "drop", "double", "swap"))
    if kind == "change":
        return word[:i] + rng.choice("aeioulnrst") + word[i + 1 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


def query_of(rng: random.Random, p: dict[str, object]) -> tuple[Criteria, str]:
    last = str(p["used_name"] or p["birth_name"]) if rng.random() < 0.3 else str(p["birth_name"])
    first = str(p["first_name"])
    kind = rng.choice(("exact", "typo", "accents", "swapped", "start", "typo+swapped"))
    if kind in ("typo", "typo+swapped"):
        if rng.random() < 0.5:
            last = typo(rng, last)
        else:
            first = typo(rng, first)
    if kind == "accents":
        last, first = fold_for_matching(last), fold_for_matching(first)
    if kind == "start":
        last = last[: max(3, len(last) // 2)]
    words = [first, last] if "swapped" in kind else [last, first]
    born = None
    if rng.random() < 0.5:
        born = p["birth_date"]
        assert isinstance(born, date)
        if rng.random() < 0.1 and born.day <= 12:
            born = born.replace(day=born.month, month=born.day)
            kind += "+date swapped"
        else:
            kind += "+date"
    return Criteria(text=" ".join(words), birth_date=born), kind


async def former_search(
    db: Database, principal: Principal, c: Criteria, limit: int = 25
) -> list[tuple[Patient, float]]:
    """The search before this change: every visible identity scored in Python."""
    async with db.read() as s:
        rows = (await s.execute(select(Patient).where(visible_patients(principal)))).scalars()
        scored = [(p, match_rate(p, c)) for p in rows]
    found = [(p, r) for p, r in scored if r >= SHOW_FROM]
    found.sort(key=lambda pr: (-pr[1], pr[0].birth_name, pr[0].first_name))
    return found[:limit]


def answer(
    hits: list[tuple[Patient, float]], least: float = 0.0
) -> list[tuple[float, str, str, str, date]]:
    # Identities of equal rate and equal names come in the database's order: compare the
    # answers as sets of (rate, identity); the order by rate then names follows.
    return sorted(
        (r, p.birth_name, p.first_name, p.first_names, p.birth_date) for p, r in hits if r >= least
    )


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else values[0]


# -- main -------------------------------------------------------------------------------


async def copy_identities(dsn: str, recs: Iterator[tuple[object, ...]], chunk: int) -> int:
    conn = await asyncpg.connect(dsn)
    n = 0
    try:
        batch: list[tuple[object, ...]] = []
        for r in recs:
            batch.append(r)
            if len(batch) >= chunk:
                await conn.copy_records_to_table("patients", records=batch, columns=COLUMNS)
                n += len(batch)
                batch = []
        if batch:
            await conn.copy_records_to_table("patients", records=batch, columns=COLUMNS)
            n += len(batch)
    finally:
        await conn.close()
    return n


async def sql(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    base, _, _ = args.database_url.rpartition("/")
    url = f"{base}/{args.name}"
    admin_dsn = args.database_url.replace("postgresql+asyncpg://", "postgresql://")
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    await sql(admin_dsn, f'DROP DATABASE IF EXISTS "{args.name}" WITH (FORCE)')
    await sql(admin_dsn, f'CREATE DATABASE "{args.name}"')
    db: Database | None = None
    try:
        await asyncio.to_thread(upgrade, url)
        db = Database(url, EventBus())
        async with db.write() as uow:
            adm = await create_user(
                uow.session,
                email="bench-admin@example.org",
                password=None,
                role=Role.admin,
                first_name="Ada",
                last_name="Bench",
            )
            doc = await create_user(
                uow.session,
                email="bench-doc@example.org",
                password=None,
                role=Role.practitioner,
                first_name="Paul",
                last_name="Bench",
            )
        admin = Principal.for_user(adm)
        practitioner = Principal.for_user(doc)
        rng = random.Random(args.seed + 1)
        people_rng = random.Random(args.seed)
        people = [identity(people_rng) for _ in range(max(args.sample_size, 200_000))]

        # 1. Same answers as the former search on a sample.
        t0 = time.perf_counter()
        await copy_identities(dsn, records(args.sample_size, args.seed, doc.id), 50_000)
        await sql(dsn, "VACUUM ANALYZE patients")  # and flush the GIN index's pending list
        print(f"seeded {args.sample_size} identities in {time.perf_counter() - t0:.1f} s")
        same = same_similar = found_old = found_new = 0
        old_ms: list[float] = []
        new_ms: list[float] = []
        for _ in range(args.sample):
            p = rng.choice(people[: args.sample_size])
            c, _kind = query_of(rng, p)
            t = time.perf_counter()
            old = await former_search(db, admin, c)
            old_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            async with db.read() as s:
                new = await search(s, admin, c)
            new_ms.append((time.perf_counter() - t) * 1000)
            same += answer(old) == answer(new)
            same_similar += answer(old, SIMILAR_FROM) == answer(new, SIMILAR_FROM)
            target = (p["birth_name"], p["first_name"], p["first_names"], p["birth_date"])
            found_old += any(
                (h.birth_name, h.first_name, h.first_names, h.birth_date) == target for h, _ in old
            )
            found_new += any(
                (h.birth_name, h.first_name, h.first_names, h.birth_date) == target for h, _ in new
            )
        print(
            f"sample of {args.sample} queries over {args.sample_size} identities: "
            f"same answers as the former search {same}/{args.sample} "
            f"({100 * same / args.sample:.1f} %), same look-alikes (rate >= {SIMILAR_FROM:.0f}) "
            f"{same_similar}/{args.sample}; queried identity found: "
            f"former {found_old}, now {found_new}; "
            f"p50 former {statistics.median(old_ms):.0f} ms, now {statistics.median(new_ms):.1f} ms"
        )

        # 2. Latency with every identity.
        t0 = time.perf_counter()
        await sql(dsn, "DROP INDEX ix_patients_search_text_trgm")
        await copy_identities(
            dsn, records(args.identities, args.seed, doc.id, start=args.sample_size), 50_000
        )
        t1 = time.perf_counter()
        await sql(
            dsn,
            "CREATE INDEX ix_patients_search_text_trgm ON patients "
            "USING gin (search_text gin_trgm_ops)",
        )
        await sql(dsn, "VACUUM ANALYZE patients")
        print(
            f"seeded {args.identities} identities: COPY {t1 - t0:.0f} s, "
            f"trigram index and ANALYZE {time.perf_counter() - t1:.0f} s"
        )
        pool = people[: min(len(people), args.identities)]
        for who, principal in (("admin", admin), ("practitioner", practitioner)):
            times: list[float] = []
            found = 0
            qrng = random.Random(args.seed + 2)
            for i in range(args.searches + 10):
                p = qrng.choice(pool)
                c, _kind = query_of(qrng, p)
                t = time.perf_counter()
                hits = await search_patients(db, principal, c, ["q"])
                if i >= 10:  # the first ones warm the caches
                    times.append((time.perf_counter() - t) * 1000)
                    target = (p["birth_name"], p["first_name"], p["first_names"], p["birth_date"])
                    found += any(
                        (h.birth_name, h.first_name, h.first_names, h.birth_date) == target
                        for h, _ in hits
                    )
            print(
                f"{args.searches} searches as {who} over {args.identities} identities: "
                f"p50 {pct(times, 50):.1f} ms, p95 {pct(times, 95):.1f} ms, "
                f"p99 {pct(times, 99):.1f} ms; queried identity among the answers "
                f"{found}/{args.searches}"
            )
        print(json.dumps({"identities": args.identities, "searches": args.searches}))
    finally:
        if db is not None:
            await db.close()
        if not args.keep:
            await sql(admin_dsn, f'DROP DATABASE IF EXISTS "{args.name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL URL whose user may create databases (the bench makes its own)",
    )
    ap.add_argument("--name", default="consilium_bench", help="the database created")
    ap.add_argument("--identities", type=int, default=1_000_000)
    ap.add_argument("--searches", type=int, default=500)
    ap.add_argument("--sample", type=int, default=200)
    ap.add_argument("--sample-size", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--keep", action="store_true", help="keep the database at the end")
    args = ap.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
