"""Settings read from the environment (prefix ``CONSILIUM_``) with pydantic-settings."""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

DEV_SECRET = "dev-insecure-secret-change-me-0123456789abcdef"  # noqa: S105 (refused outside dev)


class Settings(BaseSettings):
    """Every setting Consilium reads. Each field is ``CONSILIUM_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="CONSILIUM_", extra="ignore")

    # Server
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str = ""  # defaults to http(s)://host:port
    dev: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = "console"
    node_id: str = ""  # defaults to hostname:port
    # Set by ``consilium serve --workers N`` for each worker it starts (core/workers.py), not
    # by hand: this process's number (1..N; 0 = a server of its own) and how many share the port.
    worker_index: int = Field(0, ge=0, le=1024)
    worker_count: int = Field(1, ge=1, le=1024)
    # With serve --workers N: worker i also listens on host:(worker_port_base + i), its own
    # port for a Prometheus scrape or a health check of each worker (0: no such port).
    worker_port_base: int = Field(0, ge=0, le=65535 - 1024)

    # Storage
    data_dir: Path = Path("var")
    database_url: str = ""  # defaults to sqlite+aiosqlite:///<data_dir>/consilium.db
    redis_url: str = ""
    redis_prefix: str = "consilium:"  # keys and channels; one prefix per deployment

    # Security
    secret_key: str = DEV_SECRET
    session_idle_minutes: int = Field(30, ge=1)
    session_absolute_hours: int = Field(12, ge=1)
    # Sign-in throttling (core/throttle.py): failures slow the source down, never lock the
    # account. Free failures per (account, address or known device), then delays that start
    # at login_first_delay_seconds and double up to login_lockout_minutes.
    login_max_failures: int = Field(5, ge=1)
    login_lockout_minutes: int = Field(15, ge=1)
    login_first_delay_seconds: int = Field(30, ge=1)
    # Free failures from one address across every account before it is slowed down too.
    login_source_max_failures: int = Field(30, ge=1)
    # Failures on one account from every source (15 min) that alert its owner and the
    # administrators (once per window) and add a short delay to each further attempt.
    login_alert_failures: int = Field(10, ge=1)
    login_anomaly_delay_ms: int = Field(500, ge=0, le=10_000)
    # One-time codes sent per account in 15 minutes to sign-ins made with the right password
    # while their source was slowed down (core/login.py): the owner's way in from a new
    # device behind an attacker's address, bounded so nobody can flood her phone.
    login_throttled_codes: int = Field(3, ge=1, le=20)
    otp_ttl_seconds: int = Field(300, ge=30)
    password_reset_minutes: int = Field(30, ge=5, le=24 * 60)

    # Pro Santé Connect (OpenID Connect; core/oidc.py). Empty issuer: no PSC button.
    psc_issuer: str = ""  # e.g. https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet
    psc_client_id: str = ""
    psc_client_secret: str = ""
    psc_scopes: str = "openid scope_all"
    psc_acr_values: str = "eidas1"

    # HTTP limits
    max_json_bytes: int = Field(1_048_576, ge=1024)
    max_upload_bytes: int = Field(2 * 1024**3, ge=1024)
    upload_chunk_bytes: int = Field(8 * 1024**2, ge=64 * 1024)
    # Heavy work (core.heavy): images above this many pixels are refused at upload, and
    # decoding runs in worker processes with this much address space each.
    max_image_pixels: int = Field(50_000_000, ge=1_000_000)
    heavy_workers: int = Field(1, ge=1, le=16)
    heavy_memory_mb: int = Field(1536, ge=256)

    # Notifications
    smtp_host: str = ""
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_tls: bool = False
    mail_from: str = "Consilium <no-reply@consilium.localhost>"
    mss_smtp_host: str = ""  # MSSanté operator relay; falls back to smtp_* when empty
    mss_smtp_port: int = Field(25, ge=1, le=65535)
    mss_from: str = ""
    sms_gateway_url: str = ""
    sms_gateway_token: str = ""
    sms_sender: str = "Consilium"

    # Media (rtc/)
    stun_urls: list[str] = Field(default_factory=list)
    turn_urls: list[str] = Field(default_factory=list)
    turn_secret: str = ""
    turn_ttl_seconds: int = Field(3600, ge=60)
    rtc_allowed_addresses: list[str] = Field(default_factory=list)
    # CIDRs the SFU may send to besides public addresses (a hospital's network, loopback tests)
    rtc_allowed_networks: list[str] = Field(default_factory=list)
    # UDP ports of the SFU's sockets ("40000-49999", for the firewall); empty: any free port.
    # With --workers N each worker gets its own slice of the range (core/workers.py).
    rtc_udp_ports: str = ""

    # Dossier
    retention_days: int = Field(3650, ge=1)
    dicom_port: int = Field(0, ge=0, le=65535)  # DICOM C-STORE receiver (0 = off)
    dicom_ae_title: str = Field("CONSILIUM", max_length=16)
    # The establishment's PACS (C-FIND / C-GET from the dossier page); empty = no PACS.
    pacs_ae_title: str = Field("", max_length=16)
    pacs_host: str = ""
    pacs_port: int = Field(104, ge=1, le=65535)
    # ACSE, DIMSE and network timeouts of a PACS association: a stalled peer ends in an error.
    pacs_timeout_seconds: float = Field(30.0, gt=0)
    retention_reminder_days: int = Field(30, ge=0)

    # Operations (ops/): Prometheus metrics, webhooks, server API keys
    # /metrics answers only sources in these networks (after trusted_proxies), and only with
    # ``Authorization: Bearer <metrics_token>`` when a token is set.
    metrics_allowed_networks: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    metrics_token: str = ""
    # Webhook endpoints configured by settings (JSON list of URLs), signed with
    # webhook_secret (Standard Webhooks: "whsec_" + base64, or any text of 24+ characters).
    webhook_urls: list[str] = Field(default_factory=list)
    webhook_secret: str = ""
    # Delivery: a failed attempt is retried after base * 2^(attempt-1) seconds (jitter
    # ±20 %), at most webhook_retry_max_seconds apart, until webhook_max_attempts.
    webhook_retry_base_seconds: float = Field(5.0, gt=0)
    webhook_retry_max_seconds: float = Field(3600.0, gt=0)
    webhook_max_attempts: int = Field(20, ge=1)
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    webhook_poll_seconds: float = Field(2.0, gt=0)
    # The longest lifetime (exp - iat) accepted for an access token minted with an API key.
    api_token_max_ttl_seconds: int = Field(86_400, ge=60)

    # FHIR R4 (ops/fhir/, docs/integration.md): the establishment's identifier system for
    # its IPP (urn:oid:<the establishment's IPP OID>), and where signed reports are filed back
    # (the DPI's FHIR base URL; empty: not filed) with the Authorization header value to send.
    fhir_ipp_system: str = "urn:oid:1.2.250.1.999.1.1.7"
    fhir_push_url: str = ""
    fhir_push_authorization: str = ""
    fhir_push_retry_base_seconds: float = Field(5.0, gt=0)
    fhir_push_retry_max_seconds: float = Field(1800.0, gt=0)
    fhir_push_max_attempts: int = Field(200, ge=1)
    fhir_push_timeout_seconds: float = Field(20.0, gt=0)
    fhir_push_poll_seconds: float = Field(2.0, gt=0)

    # Reverse proxies whose X-Forwarded-For is believed (IPs or networks, JSON list). Empty:
    # the connection's address is the client's.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies", "metrics_allowed_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return v

    @field_validator("public_url", "fhir_push_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        if v and not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, v: str) -> str:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v

    @field_validator("rtc_udp_ports")
    @classmethod
    def _port_range(cls, v: str) -> str:
        if v and parse_port_range(v) is None:
            raise ValueError("expected LOW-HIGH with 1024 <= LOW <= HIGH <= 65535 (40000-49999)")
        return v

    @field_validator("webhook_urls")
    @classmethod
    def _http_urls(cls, v: list[str]) -> list[str]:
        for item in v:
            if not item.startswith(("http://", "https://")):
                raise ValueError(f"{item!r} is not an http(s) URL")
        return v

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        if self.webhook_urls and len(self.webhook_secret) < 24:
            raise ValueError(
                "CONSILIUM_WEBHOOK_SECRET (24+ characters) must be set with CONSILIUM_WEBHOOK_URLS"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("CONSILIUM_TLS_CERT and CONSILIUM_TLS_KEY go together")
        for p in (self.tls_cert, self.tls_key):
            if p is not None and not p.is_file():
                raise ValueError(f"TLS file not found: {p}")
        if not self.dev and self.secret_key == DEV_SECRET:
            raise ValueError(
                "CONSILIUM_SECRET_KEY must be set outside development mode (CONSILIUM_DEV=1)"
            )
        if len(self.secret_key) < 32:
            raise ValueError("CONSILIUM_SECRET_KEY must be at least 32 characters")
        if bool(self.psc_issuer) != bool(self.psc_client_id):
            raise ValueError("CONSILIUM_PSC_ISSUER and CONSILIUM_PSC_CLIENT_ID go together")
        if self.psc_issuer and not self.psc_issuer.startswith(
            ("https://", "http://127.", "http://[::1]")
        ):
            raise ValueError("CONSILIUM_PSC_ISSUER must be an https:// URL")
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'consilium.db'}"
        if not self.public_url:
            scheme = "https" if self.tls_cert else "http"
            self.public_url = f"{scheme}://{self.host}:{self.port}"
        if not self.node_id:
            self.node_id = f"{self.host}:{self.port}"
        return self

    @property
    def udp_ports(self) -> tuple[int, int] | None:
        """The SFU's UDP port range (inclusive), or None for any free port."""
        return parse_port_range(self.rtc_udp_ports) if self.rtc_udp_ports else None

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def parse_port_range(text: str) -> tuple[int, int] | None:
    """``"40000-49999"`` → ``(40000, 49999)``; None when malformed or out of 1024..65535."""
    m = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", text)
    if m is None:
        return None
    low, high = int(m.group(1)), int(m.group(2))
    if not 1024 <= low <= high <= 65535:
        return None
    return low, high


class SettingsError(SystemExit):
    """Raised at start-up with one line naming the wrong variable."""


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a wrong value stops start-up with one clear line (exit code 2)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = str(err["loc"][0]).upper() if err["loc"] else ""
        msg = err["msg"].removeprefix("Value error, ")
        if loc:
            line = f"consilium: invalid setting CONSILIUM_{loc}: {msg}"
        else:
            line = f"consilium: invalid configuration: {msg}"
    except PydanticSettingsError as exc:
        # e.g. a list setting that is not valid JSON: name the variable, not the traceback.
        m = re.search(r'field "(\w+)"', str(exc))
        name = f"CONSILIUM_{m.group(1).upper()}" if m else "configuration"
        line = f"consilium: invalid setting {name}: expected a JSON value"
    print(line, file=sys.stderr)
    raise SettingsError(2)
