"""``consilium serve`` as a real process: configuration errors stop it with one line naming
the variable; with a certificate it serves https; JSON logs carry the request id."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import SECRET, free_port


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSILIUM_")}
    env.update(
        CONSILIUM_DEV="1",
        CONSILIUM_SECRET_KEY=SECRET,
        CONSILIUM_DATA_DIR=str(tmp_path / "var"),
        CONSILIUM_PORT=str(free_port()),
    )
    env.update(extra)
    return env


def _serve(env: dict[str, str], *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "core.cli", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,
    )


@pytest.mark.parametrize(
    ("variable", "value", "extra"),
    [
        ("CONSILIUM_PORT", "abc", {}),
        ("CONSILIUM_TLS_CERT", "/etc/hostname", {}),  # a certificate without its key
    ],
)
def test_a_wrong_setting_stops_start_up_with_one_line_naming_it(tmp_path, variable, value, extra):
    env = _env(tmp_path, **extra)
    if value:
        env[variable] = value
    else:
        env.pop(variable, None)
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert variable in lines[0]
    assert lines[0].startswith("consilium: invalid")


@pytest.mark.parametrize(
    ("variable", "value", "extra"),
    [
        ("CONSILIUM_PORT", "70000", {}),
        ("CONSILIUM_TLS_KEY", "/etc/hostname", {}),
        ("CONSILIUM_DATABASE_URL", "mysql://db/x", {}),
        ("CONSILIUM_REDIS_URL", "http://redis", {}),
        ("CONSILIUM_STUN_URLS", "[not json", {}),
        ("CONSILIUM_SECRET_KEY", "", {"CONSILIUM_DEV": "0"}),
        ("CONSILIUM_SECRET_KEY", "too-short", {}),
        ("CONSILIUM_LOG_FORMAT", "xml", {}),
    ],
)
def test_settings_errors_name_the_variable(tmp_path, monkeypatch, capsys, variable, value, extra):
    from core.config import SettingsError, load_settings

    for k in list(os.environ):
        if k.startswith("CONSILIUM_"):
            monkeypatch.delenv(k)
    for k, v in {**_env(tmp_path, **extra), variable: value}.items():
        if k.startswith("CONSILIUM_") and v:
            monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as e:
        load_settings()
    assert e.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert variable in line


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _get(url: str, ctx: ssl.SSLContext | None, **headers: str) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _wait_ready(proc: subprocess.Popen, url: str, ctx: ssl.SSLContext | None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if _get(url, ctx)[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not answer in 60 s")


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.communicate()


def test_serves_https_with_a_certificate_and_logs_json_with_request_id(tmp_path):
    cert, key = _self_signed(tmp_path)
    env = _env(
        tmp_path,
        CONSILIUM_TLS_CERT=str(cert),
        CONSILIUM_TLS_KEY=str(key),
        CONSILIUM_LOG_FORMAT="json",
    )
    base = f"https://127.0.0.1:{env['CONSILIUM_PORT']}"
    ctx = ssl.create_default_context(cafile=str(cert))
    proc = _serve(env, "--migrate")
    try:
        _wait_ready(proc, base + "/healthz", ctx)
        status, headers, _ = _get(base + "/readyz", ctx)
        assert status == 200
        assert headers["Strict-Transport-Security"].startswith("max-age=")
        status, _, body = _get(base + "/api/v1/nope", ctx, **{"X-Request-Id": "rid-from-test"})
        assert status == 404
        assert json.loads(body)["request_id"] == "rid-from-test"
        # Plain http on the https port gets no answer.
        with pytest.raises(OSError):
            _get(f"http://127.0.0.1:{env['CONSILIUM_PORT']}/healthz", None)
    finally:
        out, err = _stop(proc)
    assert f"Consilium listening on {base}" in out
    records = []
    for line in (out + err).splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    [hit] = [r for r in records if r.get("path") == "/api/v1/nope"]
    assert hit["request_id"] == "rid-from-test"
    assert hit["status"] == 404 and hit["level"] == "info"
