"""PAdES signatures of reports with this installation's own certificate.

On first use, each installation creates under ``<data_dir>/pki``: a self-signed root
("Consilium — autorité locale"), and a signing certificate issued by it. Reports are
signed with pyHanko (PAdES baseline B, ``ETSI.CAdES.detached``). A reader who imports the
installation's root (downloadable at ``/api/v1/signing/root.pem``) sees the report as
signed and unaltered; any modified byte breaks the signature.

A qualified certificate from a French trust service (eIDAS) can replace the generated one:
put ``signer.key``/``signer.pem``/``ca.pem`` in the same directory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_LOCK = threading.Lock()


@dataclass(frozen=True)
class Pki:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def signer_cert(self) -> Path:
        return self.dir / "signer.pem"

    @property
    def signer_key(self) -> Path:
        return self.dir / "signer.key"


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Consilium"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o600)
    tmp.replace(path)


def ensure_pki(data_dir: Path, installation: str = "") -> Pki:
    """The installation's root and signing certificate, created on first use."""
    pki = Pki(Path(data_dir) / "pki")
    with _LOCK:
        if pki.signer_cert.is_file() and pki.signer_key.is_file() and pki.ca_cert.is_file():
            return pki
        pki.dir.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        label = f" ({installation})" if installation else ""
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name(f"Consilium — autorité locale{label}")
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650 * 2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"Consilium — signature des comptes-rendus{label}"))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        # The root's private key is not kept: nothing else is ever issued by it.
        pem = serialization.Encoding.PEM
        _write_private(
            pki.signer_key,
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        )
        pki.ca_cert.write_bytes(ca.public_bytes(pem))
        pki.signer_cert.write_bytes(cert.public_bytes(pem))
        return pki


def _sign_sync(pki: Pki, pdf: bytes, reason: str, signer_name: str) -> bytes:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    signer = signers.SimpleSigner.load(
        str(pki.signer_key), str(pki.signer_cert), ca_chain_files=(str(pki.ca_cert),)
    )
    assert signer is not None, "the installation's signing key cannot be loaded"
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    meta = signers.PdfSignatureMetadata(
        field_name="Signature",
        reason=reason,
        name=signer_name or None,
        location="Consilium",
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
    )
    out = io.BytesIO()
    signers.sign_pdf(writer, meta, signer=signer, output=out)
    return out.getvalue()


async def sign_pdf(data_dir: Path, pdf: bytes, *, reason: str, signer_name: str = "") -> bytes:
    """``pdf`` with a PAdES signature by this installation (runs in a worker thread)."""
    pki = await asyncio.to_thread(ensure_pki, data_dir)
    return await asyncio.to_thread(_sign_sync, pki, pdf, reason, signer_name)


@dataclass(frozen=True)
class Verification:
    signed: bool
    intact: bool  # the signed bytes were not changed
    trusted: bool  # the certificate chains to this installation's root
    covers_whole_file: bool  # nothing was appended after the signature
    signer: str
    signed_at: str | None

    @property
    def ok(self) -> bool:
        return self.signed and self.intact and self.trusted and self.covers_whole_file


async def verify_pdf(data_dir: Path, pdf: bytes) -> Verification:
    """Check the last signature of ``pdf`` against this installation's root."""
    from asn1crypto import pem as asn1_pem
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.misc import PdfReadError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    pki = await asyncio.to_thread(ensure_pki, data_dir)
    _, _, der = asn1_pem.unarmor(pki.ca_cert.read_bytes())
    root = asn1_x509.Certificate.load(der)
    unsigned = Verification(False, False, False, False, "", None)
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        sigs = reader.embedded_signatures
    except (PdfReadError, ValueError, KeyError, TypeError):
        return unsigned
    if not sigs:
        return unsigned
    try:
        status = await async_validate_pdf_signature(
            sigs[-1], ValidationContext(trust_roots=[root], allow_fetching=False)
        )
    except Exception:  # a mangled signature dictionary cannot be validated at all
        return Verification(True, False, False, False, "", None)
    signer = status.signing_cert.subject.human_friendly if status.signing_cert else ""
    when = status.signer_reported_dt.isoformat() if status.signer_reported_dt else None
    return Verification(
        signed=True,
        intact=bool(status.intact and status.valid),
        trusted=bool(status.trusted),
        covers_whole_file=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
        signer=signer,
        signed_at=when,
    )
