"""Server-side sessions (database or Redis): expiry, logout, cookie flags, CSRF."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.app import create_app
from core.context import REDIS, SESSIONS
from core.db import utcnow
from core.seed import DEMO_PASSWORD
from core.sessions import COOKIE, CSRF_HEADER, CachedSessionStore, DbSessionStore, _hash
from tests.conftest import ApiClient, make_settings


@pytest.fixture(params=["db", "redis"])
def store_kind(request):
    return request.param


@pytest.fixture
def settings(database_url, tmp_path, store_kind, request):
    extra = {}
    if store_kind == "redis":
        extra["redis_url"] = request.getfixturevalue("redis_url")
    return make_settings(database_url, tmp_path / "data", **extra)


# Every store on SQLite, the database store on PostgreSQL too (Redis does not care which
# database holds the accounts).
ALL_STORES = pytest.mark.parametrize(
    ("backend", "store_kind"),
    [("sqlite", "db"), ("postgresql", "db"), ("sqlite", "redis")],
    indirect=True,
)


def token_of(client: ApiClient) -> str:
    return next(c.value for c in client.client.session.cookie_jar if c.key == COOKIE)


async def signed_in(client: ApiClient, user_id) -> str:
    token, s = await client.app[SESSIONS].create(kind="user", subject_id=user_id, stage="full")
    client.client.session.cookie_jar.update_cookies({COOKIE: token})
    client.csrf = s.csrf_token
    return token


@ALL_STORES
async def test_the_configured_store_keeps_sessions(client, users, store_kind, settings):
    store = client.app[SESSIONS].store
    assert isinstance(store, CachedSessionStore if store_kind == "redis" else DbSessionStore)
    token = await signed_in(client, users["requester"].id)
    assert (await client.get("/api/v1/me")).status == 200
    if store_kind == "redis":
        # Keys live under the deployment's prefix, keyed by the token's hash, not the token.
        key = f"{settings.redis_prefix}session:{_hash(token)}"
        assert await client.app[REDIS].exists(key)
        assert not await client.app[REDIS].exists(f"{settings.redis_prefix}session:{token}")


@ALL_STORES
async def test_logout_ends_the_session(client, users):
    token = await signed_in(client, users["requester"].id)
    r = await client.post("/api/v1/auth/logout")
    assert r.status == 204
    assert await client.app[SESSIONS].load(token) is None
    client.client.session.cookie_jar.update_cookies({COOKIE: token})  # a replayed cookie
    r = await client.get("/api/v1/me")
    assert r.status == 401
    assert (await r.json())["code"] == "unauthenticated"


@ALL_STORES
async def test_idle_session_expires(client, users):
    token = await signed_in(client, users["requester"].id)
    store = client.app[SESSIONS].store
    s = await store.get(_hash(token))
    s.last_seen_at = utcnow() - timedelta(minutes=31)
    s.expires_at = utcnow() - timedelta(seconds=1)  # idle for longer than 30 minutes
    await store.put(s)
    r = await client.get("/api/v1/me")
    assert r.status == 401
    assert (await r.json())["code"] == "unauthenticated"
    assert await store.get(_hash(token)) is None


@ALL_STORES
async def test_absolute_lifetime_ends_even_an_active_session(client, users):
    token = await signed_in(client, users["requester"].id)
    store = client.app[SESSIONS].store
    s = await store.get(_hash(token))
    s.created_at = utcnow() - timedelta(hours=12, minutes=1)
    s.last_seen_at = utcnow() - timedelta(seconds=5)
    s.expires_at = utcnow() + timedelta(minutes=25)
    await store.put(s)
    r = await client.get("/api/v1/me")
    assert r.status == 401
    assert (await r.json())["code"] == "unauthenticated"


@ALL_STORES
async def test_activity_pushes_the_idle_deadline_back(client, users):
    token = await signed_in(client, users["requester"].id)
    store = client.app[SESSIONS].store
    s = await store.get(_hash(token))
    s.last_seen_at = utcnow() - timedelta(minutes=20)
    s.expires_at = utcnow() + timedelta(minutes=10)
    await store.put(s)
    assert (await client.get("/api/v1/me")).status == 200
    s = await store.get(_hash(token))
    assert s.expires_at > utcnow() + timedelta(minutes=29)


@pytest.mark.parametrize("store_kind", ["db"], indirect=True)
async def test_unsafe_request_without_csrf_header_is_refused(client, users):
    await signed_in(client, users["requester"].id)
    csrf = client.csrf
    client.csrf = ""
    r = await client.client.patch("/api/v1/me", json={"first_name": "Eve"})
    assert r.status == 403
    assert (await r.json())["code"] == "csrf_failed"
    r = await client.client.patch(
        "/api/v1/me", json={"first_name": "Eve"}, headers={CSRF_HEADER: "forged-token"}
    )
    assert r.status == 403
    assert (await r.json())["code"] == "csrf_failed"
    r = await client.client.patch(
        "/api/v1/me", json={"first_name": "Claire"}, headers={CSRF_HEADER: csrf}
    )
    assert r.status == 200


@pytest.mark.parametrize("store_kind", ["db"], indirect=True)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_cookies_are_httponly_samesite_and_not_secure_over_http(client, users):
    r = await client.post(
        "/api/v1/auth/login",
        json={"email": "requerant@demo.consilium.fr", "password": DEMO_PASSWORD},
    )
    session_cookie = r.cookies[COOKIE]
    assert session_cookie["httponly"]
    assert session_cookie["samesite"] == "Lax"
    assert not session_cookie["secure"]
    assert session_cookie["path"] == "/"
    csrf_cookie = r.cookies["consilium_csrf"]
    assert not csrf_cookie["httponly"]  # the page's script echoes it in X-CSRF-Token
    assert csrf_cookie["samesite"] == "Strict"


@pytest.mark.parametrize("store_kind", ["db"], indirect=True)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_cookies_are_secure_when_served_over_https(
    database_url, tmp_path, aiohttp_client, users
):
    settings = make_settings(
        database_url, tmp_path / "d2", public_url="https://consilium.example.fr"
    )
    client = ApiClient(await aiohttp_client(create_app(settings)))
    r = await client.post(
        "/api/v1/auth/login",
        json={"email": "requerant@demo.consilium.fr", "password": DEMO_PASSWORD},
    )
    assert r.status == 200
    assert r.cookies[COOKIE]["secure"]
    assert r.cookies["consilium_csrf"]["secure"]


@pytest.mark.parametrize("store_kind", ["db"], indirect=True)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_pending_sign_in_expires_after_ten_minutes(client, users):
    r = await client.post(
        "/api/v1/auth/login",
        json={"email": "requerant@demo.consilium.fr", "password": DEMO_PASSWORD},
    )
    assert r.status == 200
    token = token_of(client)
    store = client.app[SESSIONS].store
    s = await store.get(_hash(token))
    assert s.stage == "mfa"
    s.created_at = utcnow() - timedelta(minutes=11)
    s.last_seen_at = utcnow() - timedelta(seconds=5)
    await store.put(s)
    r = await client.post("/api/v1/auth/otp", json={"channel": "email"})
    assert r.status == 401
    assert (await r.json())["code"] == "password_required"


@pytest.mark.parametrize("store_kind", ["redis"], indirect=True)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_ending_all_sessions_of_a_user_in_redis_reaches_every_one(client, users, settings):
    sessions = client.app[SESSIONS]
    uid = users["requester"].id
    long_token, _ = await sessions.create(kind="user", subject_id=uid, stage="full")
    # A session created later but ending sooner must not shorten the index of the others.
    short_token, _ = await sessions.create(
        kind="user", subject_id=uid, stage="full", absolute=timedelta(seconds=5)
    )
    index = f"{settings.redis_prefix}session:by-subject:{uid}"
    assert await client.app[REDIS].ttl(index) > 60
    await sessions.store.delete_for_subject(uid)
    assert await sessions.load(long_token) is None
    assert await sessions.load(short_token) is None


@pytest.mark.parametrize("store_kind", ["redis"], indirect=True)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_session_outlives_the_loss_of_its_redis_cache(client, users, settings):
    """Redis is a cache in front of the database: emptied (a restart without persistence),
    the session is read from the database and cached again; nobody is signed out."""
    token = await signed_in(client, users["requester"].id)
    redis = client.app[REDIS]
    key = f"{settings.redis_prefix}session:{_hash(token)}"
    assert await redis.exists(key)
    assert 0 < await redis.ttl(key) <= CachedSessionStore.CACHE_SECONDS
    await redis.delete(key)
    assert (await client.get("/api/v1/me")).status == 200
    assert await redis.exists(key)  # read through, cached again
    # An ended session is gone from both.
    assert (await client.post("/api/v1/auth/logout")).status == 204
    assert not await redis.exists(key)
    assert await client.app[SESSIONS].store.durable.get(_hash(token)) is None
