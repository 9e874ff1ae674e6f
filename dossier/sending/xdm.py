"""The report as MSSanté's client referential wants it: an IHE XDM archive (ITI TF-1 §16,
ITI TF-3 §4.2.3) holding a CDA R2 level 1 document that embeds the PDF, with the XDS
metadata of the document and of its submission set.

Layout of the ZIP (IHE XDM "media" layout, one submission set):

- ``INDEX.HTM``: what the archive holds, readable in any browser;
- ``README.TXT``: who produced it (Consilium, its version) and how to read it;
- ``IHE_XDM/SUBSET01/METADATA.XML``: an ebRIM ``SubmitObjectsRequest`` with the
  DocumentEntry (``ExtrinsicObject``), the SubmissionSet (``RegistryPackage``) and their
  ``HasMember`` association;
- ``IHE_XDM/SUBSET01/DOC0001.XML``: the CDA R2 document, its body a ``nonXMLBody`` with
  the PDF in base64.

The patient's INS is in the metadata (``patientId``, ``sourcePatientId``, the CDA's
``recordTarget``) only when the identity is qualified (RNIV); otherwise the patient is
described by the traits in ``sourcePatientInfo`` and the CDA's ``patient`` element only.
"""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from datetime import date, datetime

from dossier.identity.ins import InsOid, exchangeable_ins
from dossier.models import InsStatus, Sex

# -- vocabulary ------------------------------------------------------------------------

NS_CDA = "urn:hl7-org:v3"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"

# CDA document type: LOINC 11488-4 « Compte rendu de consultation » (a téléexpertise report
# is an expert's consultation note); also the X-MSS-CODECDA header (ECO.2.4.1).
DOC_CODE = ("11488-4", "2.16.840.1.113883.6.1", "LOINC", "Compte rendu de consultation")
# XDS classCode: « Compte rendu » (CI-SIS JDV_J06-XdsClassCode-CISIS).
CLASS_CODE = ("10", "1.2.250.1.213.1.1.4.1", "Compte rendu")
# formatCode of a CDA whose body is a PDF (IHE PDF/A: urn:ihe:iti:xds-sd:pdf:2008).
FORMAT_CODE = (
    "urn:ihe:iti:xds-sd:pdf:2008",
    "1.3.6.1.4.1.19376.1.2.3",
    "Document à corps non structuré en PDF",
)
CONFIDENTIALITY = ("N", "2.16.840.1.113883.5.25", "Normal")
# Healthcare facility (JDV_J02) and practice setting (JDV_J04): téléexpertise in a health
# establishment; the submission's content type (JDV_J03): a téléexpertise act.
FACILITY = ("SA01", "1.2.250.1.71.4.2.4", "Etablissement public de santé")
PRACTICE = ("ETABLISSEMENT", "1.2.250.1.213.1.1.4.9", "Etablissement de santé")
CONTENT_TYPE = ("TELEXPERTISE", "1.2.250.1.213.1.1.4.12", "Téléexpertise")
# National practitioner identifier: 8 + RPPS (OID of the national PS identifiers).
PS_OID = "1.2.250.1.71.4.2.1"
# Templates: CI-SIS « Structuration minimale des documents de santé », body not structured.
TEMPLATES = ("2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1")
CONSILIUM_OID = "1.2.250.1.999.1"  # placeholder root for Consilium's own ids (see docs)

# ebRIM identifiers of the XDS scheme (ITI TF-3 Table 4.2.5-1).
OBJECT_TYPE_DOC = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUBMISSION_SET = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
DE = {
    "class": "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a",
    "confidentiality": "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f",
    "format": "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
    "facility": "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1",
    "practice": "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead",
    "type": "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983",
    "author": "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d",
    "patientId": "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427",
    "uniqueId": "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab",
}
SS = {
    "contentType": "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500",
    "author": "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d",
    "uniqueId": "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8",
    "sourceId": "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832",
    "patientId": "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446",
}
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"

SUBSET = "IHE_XDM/SUBSET01"
CDA_NAME = "DOC0001.XML"


@dataclass(frozen=True)
class PatientTraits:
    birth_name: str
    first_names: str
    sex: Sex
    birth_date: date
    ins: str | None
    ins_oid: str | None
    ins_status: InsStatus

    @property
    def exchangeable_ins(self) -> str | None:
        return exchangeable_ins(self.ins_status, self.ins)

    @property
    def cx(self) -> str | None:
        """The INS as an HL7 CX (``INS^^^&OID&ISO^NH``), only when qualified."""
        ins = self.exchangeable_ins
        return f"{ins}^^^&{self.ins_oid or InsOid.nir.value}&ISO^NH" if ins else None


@dataclass(frozen=True)
class Author:
    rpps: str | None
    family: str
    given: str
    establishment: str


@dataclass(frozen=True)
class XdmArchive:
    content: bytes
    document_unique_id: str
    cda_code: str
    ins_in_metadata: bool


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y%m%d%H%M%S")


def _oid_uuid(u: uuid.UUID) -> str:
    """A UUID as an OID (ITU-T X.667: 2.25.<integer>), XDS uniqueIds being OIDs."""
    return f"2.25.{u.int}"


def _hl7_sex(sex: Sex) -> str:
    return {Sex.female: "F", Sex.male: "M"}.get(sex, "U")


# -- CDA --------------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{NS_CDA}}}{tag}", attrib)
    if text is not None:
        el.text = text
    return el


def build_cda(
    *,
    document_id: uuid.UUID,
    title: str,
    created: datetime,
    patient: PatientTraits,
    author: Author,
    pdf: bytes,
) -> bytes:
    """A CDA R2 level 1 document: the French header and a ``nonXMLBody`` with the PDF."""
    ET.register_namespace("", NS_CDA)
    ET.register_namespace("xsi", NS_XSI)
    doc = ET.Element(f"{{{NS_CDA}}}ClinicalDocument")
    _sub(doc, "realmCode", code="FR")
    _sub(doc, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    for root in TEMPLATES:
        _sub(doc, "templateId", root=root)
    _sub(doc, "id", root=_oid_uuid(document_id))
    code, system, system_name, display = DOC_CODE
    _sub(doc, "code", code=code, codeSystem=system, codeSystemName=system_name, displayName=display)
    _sub(doc, "title", title)
    _sub(doc, "effectiveTime", value=_ts(created))
    _sub(doc, "confidentialityCode", code=CONFIDENTIALITY[0], codeSystem=CONFIDENTIALITY[1])
    _sub(doc, "languageCode", code="fr-FR")
    _sub(doc, "setId", root=_oid_uuid(document_id))
    _sub(doc, "versionNumber", value="1")

    role = _sub(_sub(doc, "recordTarget"), "patientRole")
    ins = patient.exchangeable_ins
    if ins:
        _sub(role, "id", root=patient.ins_oid or InsOid.nir.value, extension=ins)
    else:
        _sub(role, "id", nullFlavor="NI")  # no qualified INS: the traits identify
    pat = _sub(role, "patient")
    name = _sub(pat, "name")
    for given in patient.first_names.split():
        _sub(name, "given", given)
    _sub(name, "family", patient.birth_name, qualifier="BR")
    _sub(
        pat,
        "administrativeGenderCode",
        code=_hl7_sex(patient.sex),
        codeSystem="2.16.840.1.113883.5.1",
    )
    _sub(pat, "birthTime", value=patient.birth_date.strftime("%Y%m%d"))

    auth = _sub(doc, "author")
    _sub(auth, "time", value=_ts(created))
    assigned = _sub(auth, "assignedAuthor")
    if author.rpps:
        _sub(assigned, "id", root=PS_OID, extension=f"8{author.rpps}")
    else:
        _sub(assigned, "id", nullFlavor="UNK")
    person = _sub(_sub(assigned, "assignedPerson"), "name")
    _sub(person, "given", author.given)
    _sub(person, "family", author.family)
    org = _sub(assigned, "representedOrganization")
    _sub(org, "name", author.establishment or "Consilium")

    custodian = _sub(
        _sub(_sub(doc, "custodian"), "assignedCustodian"), "representedCustodianOrganization"
    )
    _sub(custodian, "id", root=CONSILIUM_OID)
    _sub(custodian, "name", author.establishment or "Consilium")

    body = _sub(_sub(doc, "component"), "nonXMLBody")
    text = _sub(body, "text", mediaType="application/pdf", representation="B64")
    text.text = base64.b64encode(pdf).decode("ascii")
    return ET.tostring(doc, encoding="utf-8", xml_declaration=True)


# -- XDS metadata -----------------------------------------------------------------------


def _rim(parent: ET.Element, tag: str, **attrib: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{NS_RIM}}}{tag}", attrib)


def _slot(parent: ET.Element, name: str, *values: str) -> None:
    vl = _rim(_rim(parent, "Slot", name=name), "ValueList")
    for v in values:
        _rim(vl, "Value").text = v


def _name(parent: ET.Element, text: str) -> None:
    _rim(_rim(parent, "Name"), "LocalizedString", value=text)


def _classification(
    parent: ET.Element, scheme: str, target: str, code: tuple[str, ...], ident: str
) -> ET.Element:
    c = _rim(
        parent,
        "Classification",
        classificationScheme=scheme,
        classifiedObject=target,
        nodeRepresentation=code[0],
        id=ident,
        objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification",
    )
    _slot(c, "codingScheme", code[1])
    _name(c, code[-1])
    return c


def _external_id(
    parent: ET.Element, scheme: str, target: str, value: str, label: str, ident: str
) -> None:
    e = _rim(
        parent,
        "ExternalIdentifier",
        identificationScheme=scheme,
        registryObject=target,
        value=value,
        id=ident,
        objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier",
    )
    _name(e, label)


def _author(parent: ET.Element, scheme: str, target: str, author: Author, ident: str) -> None:
    c = _rim(
        parent,
        "Classification",
        classificationScheme=scheme,
        classifiedObject=target,
        nodeRepresentation="",
        id=ident,
        objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification",
    )
    xcn = (
        f"8{author.rpps}^{author.family}^{author.given}^^^^^^&{PS_OID}&ISO^D^^^IDNPS"
        if author.rpps
        else f"^{author.family}^{author.given}"
    )
    _slot(c, "authorPerson", xcn)
    _slot(c, "authorInstitution", author.establishment or "Consilium")


def build_metadata(
    *,
    document_id: uuid.UUID,
    submission_id: uuid.UUID,
    title: str,
    created: datetime,
    patient: PatientTraits,
    author: Author,
    cda: bytes,
    recipients: list[str],
) -> bytes:
    ET.register_namespace("lcm", NS_LCM)
    ET.register_namespace("rim", NS_RIM)
    root = ET.Element(f"{{{NS_LCM}}}SubmitObjectsRequest")
    objects = _rim(root, "RegistryObjectList")

    de = _rim(
        objects,
        "ExtrinsicObject",
        id="Document01",
        mimeType="text/xml",
        objectType=OBJECT_TYPE_DOC,
        status="urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",
    )
    _slot(de, "creationTime", _ts(created))
    _slot(de, "languageCode", "fr-FR")
    _slot(de, "hash", hashlib.sha1(cda).hexdigest())  # noqa: S324 (XDS asks for SHA-1)
    _slot(de, "size", str(len(cda)))
    _slot(de, "URI", CDA_NAME)
    cx = patient.cx
    if cx:
        _slot(de, "sourcePatientId", cx)
    _slot(
        de,
        "sourcePatientInfo",
        f"PID-5|{patient.birth_name}^{' '.join(patient.first_names.split()[:1])}^^^^^L",
        f"PID-7|{patient.birth_date.strftime('%Y%m%d')}",
        f"PID-8|{_hl7_sex(patient.sex)}",
    )
    _name(de, title)
    _classification(de, DE["class"], "Document01", CLASS_CODE, "cl01")
    _classification(de, DE["confidentiality"], "Document01", CONFIDENTIALITY, "cl02")
    _classification(de, DE["format"], "Document01", FORMAT_CODE, "cl03")
    _classification(de, DE["facility"], "Document01", FACILITY, "cl04")
    _classification(de, DE["practice"], "Document01", PRACTICE, "cl05")
    _classification(de, DE["type"], "Document01", DOC_CODE[:2] + DOC_CODE[3:], "cl06")
    _author(de, DE["author"], "Document01", author, "cl07")
    if cx:
        _external_id(de, DE["patientId"], "Document01", cx, "XDSDocumentEntry.patientId", "ei01")
    _external_id(
        de,
        DE["uniqueId"],
        "Document01",
        _oid_uuid(document_id),
        "XDSDocumentEntry.uniqueId",
        "ei02",
    )

    ss = _rim(
        objects,
        "RegistryPackage",
        id="SubmissionSet01",
        objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage",
    )
    _slot(ss, "submissionTime", _ts(created))
    if recipients:
        _slot(ss, "intendedRecipient", *(f"^^Internet^{r}" for r in recipients))
    _name(ss, title)
    _classification(ss, SS["contentType"], "SubmissionSet01", CONTENT_TYPE, "cl08")
    _author(ss, SS["author"], "SubmissionSet01", author, "cl09")
    if cx:
        _external_id(
            ss, SS["patientId"], "SubmissionSet01", cx, "XDSSubmissionSet.patientId", "ei03"
        )
    _external_id(
        ss,
        SS["uniqueId"],
        "SubmissionSet01",
        _oid_uuid(submission_id),
        "XDSSubmissionSet.uniqueId",
        "ei04",
    )
    _external_id(
        ss, SS["sourceId"], "SubmissionSet01", CONSILIUM_OID, "XDSSubmissionSet.sourceId", "ei05"
    )
    _rim(
        objects,
        "Classification",
        classifiedObject="SubmissionSet01",
        classificationNode=SUBMISSION_SET,
        id="cl10",
        objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification",
    )
    assoc = _rim(
        objects,
        "Association",
        associationType=HAS_MEMBER,
        sourceObject="SubmissionSet01",
        targetObject="Document01",
        id="as01",
        objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association",
    )
    _slot(assoc, "SubmissionSetStatus", "Original")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# -- archive ----------------------------------------------------------------------------


def _index(title: str, number: str) -> bytes:
    return (
        '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title></head><body>\n"
        f"<h1>{_esc(title)}</h1>\n<p>Dossier n° {_esc(number)}</p>\n<ul>\n"
        f'<li><a href="{SUBSET}/{CDA_NAME}">Compte rendu (CDA R2 avec le PDF)</a></li>\n'
        f'<li><a href="{SUBSET}/METADATA.XML">Métadonnées XDS</a></li>\n'
        '<li><a href="README.TXT">README.TXT</a></li>\n</ul>\n</body></html>\n'
    ).encode()


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _readme(created: datetime) -> bytes:
    return (
        "Archive IHE XDM produite par Consilium (téléexpertise).\r\n"
        f"Créée le {created.strftime('%d/%m/%Y %H:%M')} UTC.\r\n\r\n"
        f"{SUBSET}/{CDA_NAME} : document CDA R2 niveau 1, le compte rendu PDF en base64.\r\n"
        f"{SUBSET}/METADATA.XML : métadonnées XDS (ebRIM 3.0) du document et du lot.\r\n"
        "INDEX.HTM : sommaire lisible dans un navigateur.\r\n\r\n"
        "Ce support contient des données de santé à caractère personnel.\r\n"
    ).encode()


def build_archive(
    *,
    title: str,
    number: str,
    created: datetime,
    patient: PatientTraits,
    author: Author,
    pdf: bytes,
    recipients: list[str],
) -> XdmArchive:
    document_id, submission_id = uuid.uuid4(), uuid.uuid4()
    cda = build_cda(
        document_id=document_id,
        title=title,
        created=created,
        patient=patient,
        author=author,
        pdf=pdf,
    )
    metadata = build_metadata(
        document_id=document_id,
        submission_id=submission_id,
        title=title,
        created=created,
        patient=patient,
        author=author,
        cda=cda,
        recipients=recipients,
    )
    buf = io.BytesIO()
    stamp = created.timetuple()[:6]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in (
            ("INDEX.HTM", _index(title, number)),
            ("README.TXT", _readme(created)),
            (f"{SUBSET}/METADATA.XML", metadata),
            (f"{SUBSET}/{CDA_NAME}", cda),
        ):
            zf.writestr(zipfile.ZipInfo(name, date_time=stamp), data, zipfile.ZIP_DEFLATED)
    return XdmArchive(
        content=buf.getvalue(),
        document_unique_id=_oid_uuid(document_id),
        cda_code=DOC_CODE[0],
        ins_in_metadata=cx_present(patient),
    )


def cx_present(patient: PatientTraits) -> bool:
    return patient.cx is not None
