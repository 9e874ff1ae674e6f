"""The INS (identifiant national de santé): its matricule, its OID, and the identity status
rules of the national identity-vigilance reference (RNIV).

The matricule is the NIR (or, while a NIR is pending, a NIA): 13 characters plus a 2-digit
key ``97 − (NIR mod 97)``, Corsica's 2A/2B counting as 19/18; the key is checked by
python-stdnum (``stdnum.fr.nir``). The OID names who assigned it (ANS, "Guide
d'implémentation de l'INS" and the INSi teleservice): 1.2.250.1.213.1.4.8 NIR,
1.2.250.1.213.1.4.9 NIA, 1.2.250.1.213.1.4.10 NIR of the test environment,
1.2.250.1.213.1.4.11 NIR of the demonstration environment.

Statuses and what each needs (RNIV, « statuts de l'identité numérique »):

- ``provisional`` (identité provisoire): no INSi call, no document checked;
- ``recovered`` (identité récupérée): the INS was returned by the INSi teleservice, no
  high-trust document checked;
- ``validated`` (identité validée): a high-trust identity document was checked, no INSi;
- ``qualified`` (identité qualifiée): recovered **and** validated. Only a qualified
  identity's INS may be used and sent in exchanges.
"""

from __future__ import annotations

import enum
import re
from datetime import date

from stdnum.exceptions import ValidationError as StdnumError
from stdnum.fr import nir

from core.errors import Conflict, ValidationFailed
from dossier.models import InsStatus, Sex


class InsOid(enum.StrEnum):
    nir = "1.2.250.1.213.1.4.8"
    nia = "1.2.250.1.213.1.4.9"
    nir_test = "1.2.250.1.213.1.4.10"
    nir_demo = "1.2.250.1.213.1.4.11"

    @property
    def label(self) -> str:
        return INS_OID_LABELS[self]


INS_OID_LABELS = {
    InsOid.nir: "NIR",
    InsOid.nia: "NIA",
    InsOid.nir_test: "NIR de test",
    InsOid.nir_demo: "NIR de démonstration",
}


class IdentityDocument(enum.StrEnum):
    """High-trust documents that validate an identity (RNIV): for an adult an identity card,
    a passport or a residence permit; for a minor, the parents' family record book or a
    birth certificate, with a parent's document."""

    passport = "passport"
    identity_card = "identity_card"
    residence_permit = "residence_permit"
    family_record_book = "family_record_book"
    birth_certificate = "birth_certificate"

    @property
    def label(self) -> str:
        return IDENTITY_DOCUMENT_LABELS[self]


IDENTITY_DOCUMENT_LABELS = {
    IdentityDocument.passport: "Passeport",
    IdentityDocument.identity_card: "Carte nationale d'identité",
    IdentityDocument.residence_permit: "Titre de séjour",
    IdentityDocument.family_record_book: "Livret de famille",
    IdentityDocument.birth_certificate: "Extrait d'acte de naissance",
}

_STRUCTURE = re.compile(r"^[1-478]\d{4}(\d{2}|2A|2B)\d{6}\d{2}$")


def ins_key(nir13: str) -> int:
    """The NIR's mod-97 key; Corsica's 2A/2B count as 19/18."""
    return int(nir.calc_check_digits(nir13.upper()))


def ins_with_key(nir13: str) -> str:
    """Complete a 13-character NIR with its key (demo data, tests)."""
    return f"{nir13}{ins_key(nir13):02d}"


def _invalid(detail: str) -> ValidationFailed:
    return ValidationFailed(detail, code="invalid_ins")


def validate_ins(raw: str, *, sex: Sex | None = None, birth_date: date | None = None) -> str:
    """Check an INS matricule and return it normalised (15 characters, no spaces).

    Checks the structure (sex digit, month incl. the NIR's special values, department incl.
    Corsica, commune, order number), the mod-97 key (stdnum), and, when given, that the sex
    digit and the year and month of birth agree with the identity's traits.
    """
    ins = re.sub(r"[\s.\-]", "", raw).upper()
    if len(ins) != 15:
        raise _invalid("An INS has 15 characters (13 + a 2-digit key)")
    if not _STRUCTURE.match(ins):
        raise _invalid("An INS is made of digits (2A or 2B allowed for Corsica)")
    sex_digit, yy, mm, dept = ins[0], ins[1:3], int(ins[3:5]), ins[5:7]
    if not (1 <= mm <= 12 or mm == 20 or 30 <= mm <= 42 or mm >= 50):
        raise _invalid("The month of birth in this INS is not possible")
    if dept == "00":
        raise _invalid("The department in this INS is not possible")
    # Overseas (97x, 98x): 3-digit department, 2-digit commune.
    commune = ins[8:10] if dept in ("97", "98") else ins[7:10]
    if int(commune) == 0:
        raise _invalid("The commune in this INS is not possible")
    if int(ins[10:13]) == 0:
        raise _invalid("The order number in this INS is not possible")
    try:
        nir.validate(ins)
    except StdnumError:
        raise _invalid("The INS key does not match (mod 97)") from None
    known_sex = sex is not None and sex is not Sex.unknown and sex_digit in "12"
    if known_sex and (sex_digit == "1") != (sex is Sex.male):
        raise ValidationFailed(
            "The INS's sex digit does not match the sex entered", code="ins_mismatch"
        )
    if (
        birth_date is not None
        and 1 <= mm <= 12
        and (int(yy) != birth_date.year % 100 or mm != birth_date.month)
    ):
        raise ValidationFailed(
            "The INS's year and month of birth do not match the birth date entered",
            code="ins_mismatch",
        )
    return ins


# -- statuses ---------------------------------------------------------------------------

# (from, to) → what the change needs: "insi" (an INSi call returned this INS), "document"
# (a high-trust document was checked). Downgrades need only a reason (a doubt, an INS the
# teleservice no longer confirms, a document found false).
TRANSITIONS: dict[tuple[InsStatus, InsStatus], frozenset[str]] = {
    (InsStatus.provisional, InsStatus.recovered): frozenset({"insi"}),
    (InsStatus.provisional, InsStatus.validated): frozenset({"document"}),
    (InsStatus.recovered, InsStatus.qualified): frozenset({"document"}),
    (InsStatus.validated, InsStatus.qualified): frozenset({"insi"}),
    (InsStatus.recovered, InsStatus.provisional): frozenset(),
    (InsStatus.validated, InsStatus.provisional): frozenset(),
    (InsStatus.qualified, InsStatus.recovered): frozenset(),
    (InsStatus.qualified, InsStatus.validated): frozenset(),
    (InsStatus.qualified, InsStatus.provisional): frozenset(),
}

# What each status rests on, whatever the path to it.
NEEDS: dict[InsStatus, frozenset[str]] = {
    InsStatus.provisional: frozenset(),
    InsStatus.recovered: frozenset({"insi"}),
    InsStatus.validated: frozenset({"document"}),
    InsStatus.qualified: frozenset({"insi", "document"}),
}


def allowed_targets(current: InsStatus) -> list[InsStatus]:
    return [to for (frm, to) in TRANSITIONS if frm is current]


def check_transition(current: InsStatus, target: InsStatus) -> frozenset[str]:
    """What the change needs; 409 ``illegal_identity_transition`` if the RNIV has no such
    step (provisional → qualified skips a check: recover or validate first)."""
    needs = TRANSITIONS.get((current, target))
    if needs is None:
        raise Conflict(
            f"An identity goes from {current.value} to "
            f"{', '.join(t.value for t in allowed_targets(current))}, not to {target.value}",
            code="illegal_identity_transition",
            current=current.value,
            target=target.value,
            allowed=[t.value for t in allowed_targets(current)],
        )
    return needs


def exchangeable_ins(status: InsStatus, ins: str | None) -> str | None:
    """The INS as it may leave Consilium: only a qualified identity's (RNIV)."""
    return ins if status is InsStatus.qualified and ins else None
