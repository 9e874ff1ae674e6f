"""Demo data: four accounts (requester, expert, secretary, admin), then each feature
package's own demo data (``<package>.seed.seed_demo(db, users)`` when it exists). Idempotent."""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass

from core import accounts, passwords
from core.app import FEATURES
from core.config import Settings
from core.db import Database
from core.events import EventBus

DEMO_PASSWORD = "Consilium-demo-2026"  # noqa: S105 (demo accounts only)


@dataclass(frozen=True)
class DemoUser:
    key: str
    email: str
    role: accounts.Role
    title: str
    first_name: str
    last_name: str
    rpps10: str | None
    profession: str
    specialty: str
    establishment: str
    mobile: str


DEMO_USERS = (
    DemoUser(
        "requester",
        "requerant@demo.consilium.fr",
        accounts.Role.practitioner,
        "Dr",
        "Claire",
        "Martin",
        "1000000001",
        "Médecin",
        "Médecine générale",
        "EHPAD Les Tilleuls, Lyon",
        "+33600000001",
    ),
    DemoUser(
        "expert",
        "expert@demo.consilium.fr",
        accounts.Role.practitioner,
        "Dr",
        "Karim",
        "Benali",
        "1000000002",
        "Médecin",
        "Endocrinologie-diabétologie",
        "Hospices Civils de Lyon — Hôpital Lyon Sud",
        "+33600000002",
    ),
    DemoUser(
        "secretary",
        "secretariat@demo.consilium.fr",
        accounts.Role.secretary,
        "",
        "Sophie",
        "Durand",
        None,
        "Secrétaire médicale",
        "",
        "EHPAD Les Tilleuls, Lyon",
        "+33600000003",
    ),
    DemoUser(
        "admin",
        "admin@demo.consilium.fr",
        accounts.Role.admin,
        "",
        "Alain",
        "Rousseau",
        None,
        "Administrateur",
        "",
        "GRADeS",
        "+33600000004",
    ),
)


@functools.cache
def _demo_password_hash() -> str:
    # One argon2 hash for the shared demo password: seeding (and every test) stays fast.
    return passwords.hash_password(DEMO_PASSWORD)


async def seed_accounts(db: Database) -> dict[str, accounts.User]:
    users: dict[str, accounts.User] = {}
    async with db.write() as uow:
        for d in DEMO_USERS:
            user = await accounts.get_by_email(uow.session, d.email)
            if user is None:
                user = await accounts.create_user(
                    uow.session,
                    email=d.email,
                    password=None,
                    role=d.role,
                    title=d.title,
                    first_name=d.first_name,
                    last_name=d.last_name,
                    rpps=accounts.rpps_with_key(d.rpps10) if d.rpps10 else None,
                    profession=d.profession,
                    specialty=d.specialty,
                    establishment=d.establishment,
                    mobile=d.mobile,
                    mss_address=(
                        f"{d.first_name.lower()}.{d.last_name.lower()}@demo.mssante.fr"
                        if d.rpps10
                        else None
                    ),
                    delegates_for=[users["requester"].id] if d.key == "secretary" else None,
                )
                user.password_hash = _demo_password_hash()
            users[d.key] = user
    return users


async def seed_demo(settings: Settings) -> None:
    db = Database(settings.database_url, EventBus())
    try:
        users = await seed_accounts(db)
        for name in FEATURES:
            if importlib.util.find_spec(f"{name}.seed") is not None:
                mod = importlib.import_module(f"{name}.seed")
                await mod.seed_demo(db, users)
    finally:
        await db.close()
    print(f"\nComptes de démonstration (mot de passe commun : {DEMO_PASSWORD})")
    for d in DEMO_USERS:
        print(f"  {d.key:<10} {d.email}")
    if settings.dev:
        print(f"Codes à usage unique : {settings.public_url}/dev/outbox")
