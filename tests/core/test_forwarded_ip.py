"""Behind a reverse proxy: the client's address comes from X-Forwarded-For only when the
connection is from a trusted proxy; audit rows and rate limits use it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from core.auth import forwarded_ip
from core.config import Settings
from core.context import DB
from tests.conftest import make_settings

PROXIES = ["127.0.0.1", "10.0.0.0/8"]


@pytest.mark.parametrize(
    ("remote", "header", "trusted", "expected"),
    [
        ("127.0.0.1", "203.0.113.7", [], "127.0.0.1"),  # no proxy configured: header ignored
        ("198.51.100.2", "203.0.113.7", PROXIES, "198.51.100.2"),  # not from a proxy
        ("127.0.0.1", "203.0.113.7", PROXIES, "203.0.113.7"),
        ("127.0.0.1", "1.2.3.4, 203.0.113.7, 10.1.2.3", PROXIES, "203.0.113.7"),  # forged left
        ("127.0.0.1", "", PROXIES, "127.0.0.1"),
        ("127.0.0.1", "not-an-ip", PROXIES, "127.0.0.1"),
        ("127.0.0.1", "2001:db8::1", PROXIES, "2001:db8::1"),
    ],
)
def test_forwarded_ip(remote: str, header: str, trusted: list[str], expected: str) -> None:
    assert forwarded_ip(remote, header, trusted) == expected


def test_a_wrong_proxy_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        Settings(trusted_proxies=["proxy.example.org"])


@pytest.fixture
def settings(database_url, tmp_path):
    return make_settings(database_url, tmp_path / "data", trusted_proxies=["127.0.0.1"])


async def test_audit_records_the_forwarded_address(client, users):
    r = await client.post(
        "/api/v1/auth/login",
        json={"email": "nobody@example.org", "password": "wrong-password"},
        headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"},
    )
    assert r.status == 401
    async with client.app[DB].read() as session:
        row = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "auth.login"))
        ).scalar_one()
    assert row.ip == "203.0.113.9"
