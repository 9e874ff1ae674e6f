"""The ``consilium`` command: serve, migrate, create-user, seed-demo, db-revision, and the
subcommands feature packages add (``api-key``: ops/cli.py; ``mss-directory``: dossier/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import importlib.util
import re
import sys

from core.config import load_settings

# ``consilium api-key …`` (ops/cli.py), ``consilium mss-directory import`` (dossier/cli.py)
CLI_PACKAGES = ("ops", "dossier")


def _serve(args: argparse.Namespace) -> int:
    from core.app import create_app
    from core.http import configure_logging, serve_app

    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    settings = load_settings(**overrides)
    configure_logging(settings.log_level, settings.log_format, worker=settings.worker_index)
    from core import audit, workers

    try:
        count = workers.parse_workers(args.workers)
        workers.check(settings, count)
    except workers.ClusterError as e:
        print(f"consilium: {e}", file=sys.stderr)
        return 2
    audit.configure_chain(settings.secret_key)
    if args.migrate:  # once, in the parent of several workers: they never migrate
        from core.migrate import upgrade

        upgrade(settings.database_url)
    if count > 1:
        try:
            return workers.serve_workers(settings, count)
        except workers.ClusterError as e:
            print(f"consilium: {e}", file=sys.stderr)
            return 1
    ssl_context = None
    if settings.tls_cert and settings.tls_key:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(settings.tls_cert, settings.tls_key)
    app = create_app(settings)
    print(f"Consilium listening on {settings.public_url}", flush=True)
    asyncio.run(
        serve_app(
            app,
            settings.host,
            settings.port,
            ssl_context=ssl_context,
            reuse_port=settings.worker_index > 0,  # one of several workers on this port
            own_port=settings.worker_port_base + settings.worker_index
            if settings.worker_index and settings.worker_port_base
            else 0,
        )
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from core import audit
    from core.migrate import upgrade

    settings = load_settings()
    audit.configure_chain(settings.secret_key)  # existing rows are chained when migrating
    upgrade(settings.database_url)
    print(f"Database migrated: {settings.database_url}")
    return 0


def _create_user(args: argparse.Namespace) -> int:
    from core import accounts
    from core.db import Database
    from core.errors import Problem, ValidationFailed
    from core.events import EventBus

    settings = load_settings()
    password = args.password or getpass.getpass("Password: ")
    from core import audit

    audit.configure_chain(settings.secret_key)

    async def run() -> None:
        db = Database(settings.database_url, EventBus())
        try:
            delegates = []
            async with db.read() as session:
                for email in args.delegate_for or []:
                    practitioner = await accounts.get_by_email(session, email)
                    if practitioner is None:
                        raise ValidationFailed(f"No account {email} to delegate for")
                    delegates.append(practitioner.id)
            user, _ = await accounts.create_account(
                db,
                actor=None,
                email=args.email,
                password=password,
                role=accounts.Role(args.role),
                first_name=args.first_name,
                last_name=args.last_name,
                title=args.title,
                rpps=args.rpps,
                mobile=args.mobile,
                profession=args.profession,
                specialty=args.specialty,
                establishment=args.establishment,
                mss_address=args.mss_address,
                delegates_for=delegates,
                totp=args.totp,
            )
            print(f"Created {user.role.value} {user.email} ({user.id})")
            if user.totp_secret:
                # Shown once: the script keeps it in its secret store (docs/accounts.md).
                print(f"TOTP secret: {user.totp_secret}")
        finally:
            await db.close()

    try:
        asyncio.run(run())
    except Problem as p:
        print(f"consilium: {p.detail or p.title}", file=sys.stderr)
        return 1
    return 0


def _seed_demo(args: argparse.Namespace) -> int:
    from core import audit
    from core.seed import seed_demo

    settings = load_settings()
    audit.configure_chain(settings.secret_key)
    asyncio.run(seed_demo(settings))
    return 0


def _db_revision(args: argparse.Namespace) -> int:
    """Write a new migration of one package's tables (for developers)."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from core.migrate import _package_dir, alembic_config, upgrade

    settings = load_settings()
    upgrade(settings.database_url)
    cfg = alembic_config(settings.database_url)
    cfg.attributes["package"] = args.package
    script = ScriptDirectory.from_config(cfg)
    has_branch = any(args.package in (r.branch_labels or ()) for r in script.walk_revisions())
    pkg_dir = _package_dir(args.package)
    assert pkg_dir is not None
    versions = pkg_dir / "migrations" / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    if has_branch:
        command.revision(cfg, args.message, autogenerate=True, head=f"{args.package}@head")
    else:
        core_head = None if args.package == "core" else script.get_revision("core@head").revision
        command.revision(
            cfg,
            args.message,
            autogenerate=True,
            head="base",
            branch_label=args.package,
            version_path=str(versions),
            depends_on=core_head,
        )
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    """Walk the audit chain; exit 0 when intact, 1 naming the first broken row."""
    from core import audit
    from core.db import Database
    from core.events import EventBus

    settings = load_settings()
    audit.configure_chain(settings.secret_key)

    async def run() -> audit.Verdict:
        db = Database(settings.database_url, EventBus())
        try:
            return await audit.verify(db)
        finally:
            await db.close()

    verdict = asyncio.run(run())
    if verdict.first_break is None:
        print(f"audit log intact: {verdict.rows} rows chained")
        return 0
    print(f"audit log BROKEN at {verdict.first_break}", file=sys.stderr)
    return 1


def db_roles_sql(app_role: str, password: str, owner: str, database: str) -> list[str]:
    """PostgreSQL: an application role that reads and writes, but cannot truncate, alter, drop
    or rewrite the audit log. Migrations run as ``owner``; the server connects as ``app_role``."""
    ident = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
    for name in (app_role, owner, database):
        if not ident.match(name):
            raise SystemExit(f"consilium: {name!r} is not a plain lower-case SQL identifier")
    pw = password.replace("'", "''")
    return [
        f"CREATE ROLE {app_role} LOGIN PASSWORD '{pw}' NOSUPERUSER NOCREATEDB NOCREATEROLE",
        f"GRANT CONNECT ON DATABASE {database} TO {app_role}",
        f"GRANT USAGE ON SCHEMA public TO {app_role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app_role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app_role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {app_role}",
        f"REVOKE DELETE, TRUNCATE ON audit_chain FROM {app_role}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app_role}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {app_role}",
    ]


def _db_roles(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.is_sqlite:
        print("consilium: database roles exist on PostgreSQL only", file=sys.stderr)
        return 2
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    password = args.password or getpass.getpass(f"Password for {args.app_role}: ")
    owner = url.username or "postgres"
    statements = db_roles_sql(args.app_role, password, owner, url.database or "")
    if not args.apply:
        for st in statements:
            print(st + ";")
        return 0

    async def run() -> None:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(settings.database_url)
        try:
            async with engine.begin() as conn:
                for st in statements:
                    await conn.execute(text(st))
        finally:
            await engine.dispose()

    asyncio.run(run())
    print(f"Role {args.app_role} created; point CONSILIUM_DATABASE_URL of the server at it.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="consilium", description="Consilium telehealth server")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("serve", help="serve HTTP (and HTTPS with CONSILIUM_TLS_CERT/KEY)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--migrate", action="store_true", help="migrate the database first")
    p.add_argument(
        "--workers",
        default="1",
        metavar="N",
        help="run N node processes sharing the port (SO_REUSEPORT; 'auto': one per core); "
        "more than 1 needs Redis and PostgreSQL (docs/deployment.md)",
    )
    p.set_defaults(fn=_serve)

    p = sub.add_parser("migrate", help="bring the database schema up to date")
    p.set_defaults(fn=_migrate)

    p = sub.add_parser("create-user", help="create an account")
    p.add_argument("--email", required=True)
    p.add_argument("--role", choices=["practitioner", "secretary", "admin"], required=True)
    p.add_argument("--first-name", required=True)
    p.add_argument("--last-name", required=True)
    p.add_argument("--title", default="")
    p.add_argument("--rpps")
    p.add_argument("--mobile")
    p.add_argument("--profession", default="")
    p.add_argument("--specialty", default="")
    p.add_argument("--establishment", default="")
    p.add_argument("--mss-address")
    p.add_argument(
        "--delegate-for", action="append", metavar="EMAIL", help="secretaries: a practitioner"
    )
    p.add_argument("--password", help="read from the terminal when absent")
    p.add_argument(
        "--totp",
        action="store_true",
        help="enrol an authenticator secret now and print it once (service accounts)",
    )
    p.set_defaults(fn=_create_user)

    p = sub.add_parser("seed-demo", help="create demo accounts and data (idempotent)")
    p.set_defaults(fn=_seed_demo)

    p = sub.add_parser("db-revision", help="write a migration for a package's models")
    p.add_argument("package", choices=["core", "rooms", "chat", "rtc", "dossier", "ops"])
    p.add_argument("-m", "--message", required=True)
    p.set_defaults(fn=_db_revision)

    p = sub.add_parser("audit", help="audit log tools")
    audit_sub = p.add_subparsers(dest="audit_cmd", required=True)
    pv = audit_sub.add_parser("verify", help="check the audit log's HMAC chain")
    pv.set_defaults(fn=_audit_verify)

    p = sub.add_parser(
        "db-roles",
        help="PostgreSQL: print (or --apply, as the tables' owner) the SQL creating the "
        "application's role, which cannot truncate or rewrite the audit log",
    )
    p.add_argument("--app-role", default="consilium_app")
    p.add_argument("--password", help="read from the terminal when absent")
    p.add_argument("--apply", action="store_true", help="run it on CONSILIUM_DATABASE_URL")
    p.set_defaults(fn=_db_roles)

    # Subcommands of feature packages (named as strings: core imports none of them).
    for name in CLI_PACKAGES:
        if importlib.util.find_spec(f"{name}.cli") is not None:
            importlib.import_module(f"{name}.cli").register(sub)

    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
