"""MSSanté per the client referential: the report leaves as an IHE XDM archive (XDS
metadata, a CDA R2 level 1 embedding the PDF byte for byte, INDEX.HTM, README.TXT) with the
X-MSS-* headers, received here by a real SMTP server (aiosmtpd); the patient's INS is in the
metadata only when the identity is qualified."""

from __future__ import annotations

import base64
import hashlib
import io
import xml.etree.ElementTree as ET
import zipfile

import pytest
from sqlalchemy import update

from core.context import DB
from dossier.identity.ins import InsOid, ins_with_key
from dossier.models import Patient
from dossier.sending import xdm
from tests.dossier.test_sending import _report, settings, sms  # noqa: F401 (fixtures)

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

NS = {"cda": xdm.NS_CDA, "rim": xdm.NS_RIM, "lcm": xdm.NS_LCM}
INS = ins_with_key("1800175101042")  # male, January 1980: MARTIN Jean of make_dossier


async def send_report(app, client, users, smtp, to: str, *, status: str):
    dossier_id, report = await _report(app, client, users)
    async with app[DB].write() as uow:  # the fixture's patient, given an INS and a status
        await uow.session.execute(
            update(Patient).values(ins=INS, ins_oid=InsOid.nir.value, ins_status=status)
        )
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents/{report['id']}/content")
    pdf = await r.read()
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/send",
        json={"document_id": report["id"], "channel": "mss", "mss_recipients": [to]},
    )
    assert r.status == 200, await r.text()
    [msg] = await smtp.wait_for(to)
    return msg, pdf


def archive_of(msg) -> zipfile.ZipFile:
    by_name = {a.get_filename(): a for a in msg.iter_attachments()}
    assert by_name["IHE_XDM.ZIP"].get_content_type() == "application/zip"
    return zipfile.ZipFile(io.BytesIO(by_name["IHE_XDM.ZIP"].get_content()))


def slot(obj: ET.Element, name: str) -> list[str]:
    return [
        v.text or ""
        for s in obj.findall("rim:Slot", NS)
        if s.get("name") == name
        for v in s.findall("rim:ValueList/rim:Value", NS)
    ]


async def test_report_goes_as_an_xdm_archive_with_the_qualified_ins(app, client, users, smtp):
    msg, pdf = await send_report(app, client, users, smtp, "x@demo.mssante.fr", status="qualified")
    assert msg["X-MSS-CODECDA"] == "11488-4"
    assert msg["X-MSS-INS"] == "O"
    zf = archive_of(msg)
    assert sorted(zf.namelist()) == [
        "IHE_XDM/SUBSET01/DOC0001.XML",
        "IHE_XDM/SUBSET01/METADATA.XML",
        "INDEX.HTM",
        "README.TXT",
    ]
    assert zf.testzip() is None
    assert b"IHE_XDM/SUBSET01/DOC0001.XML" in zf.read("INDEX.HTM")
    assert "Consilium" in zf.read("README.TXT").decode()

    cda_bytes = zf.read("IHE_XDM/SUBSET01/DOC0001.XML")
    cda = ET.fromstring(cda_bytes)
    assert cda.tag == f"{{{xdm.NS_CDA}}}ClinicalDocument"
    assert cda.find("cda:typeId", NS).get("extension") == "POCD_HD000040"
    assert cda.find("cda:code", NS).get("code") == msg["X-MSS-CODECDA"]  # ECO.2.4.1
    pid = cda.find("cda:recordTarget/cda:patientRole/cda:id", NS)
    assert (pid.get("root"), pid.get("extension")) == (InsOid.nir.value, INS)
    name = cda.find("cda:recordTarget/cda:patientRole/cda:patient/cda:name", NS)
    assert name.find("cda:family", NS).text == "MARTIN"
    author = cda.find("cda:author/cda:assignedAuthor/cda:id", NS)
    assert author.get("extension") == "8" + users["expert"].rpps
    text = cda.find("cda:component/cda:nonXMLBody/cda:text", NS)
    assert (text.get("mediaType"), text.get("representation")) == ("application/pdf", "B64")
    assert base64.b64decode(text.text) == pdf  # the PDF, byte for byte

    meta = ET.fromstring(zf.read("IHE_XDM/SUBSET01/METADATA.XML"))
    assert meta.tag == f"{{{xdm.NS_LCM}}}SubmitObjectsRequest"
    [de] = meta.findall("rim:RegistryObjectList/rim:ExtrinsicObject", NS)
    assert de.get("objectType") == xdm.OBJECT_TYPE_DOC and de.get("mimeType") == "text/xml"
    assert slot(de, "URI") == ["DOC0001.XML"]
    assert slot(de, "hash") == [hashlib.sha1(cda_bytes).hexdigest()]
    assert slot(de, "size") == [str(len(cda_bytes))]
    cx = f"{INS}^^^&{InsOid.nir.value}&ISO^NH"
    assert slot(de, "sourcePatientId") == [cx]
    ids = {
        e.get("identificationScheme"): e.get("value")
        for e in de.findall("rim:ExternalIdentifier", NS)
    }
    assert ids[xdm.DE["patientId"]] == cx
    assert ids[xdm.DE["uniqueId"]] == cda.find("cda:id", NS).get("root")
    schemes = {
        c.get("classificationScheme"): c.get("nodeRepresentation")
        for c in de.findall("rim:Classification", NS)
    }
    assert schemes[xdm.DE["type"]] == "11488-4"
    assert schemes[xdm.DE["format"]] == "urn:ihe:iti:xds-sd:pdf:2008"
    [ss] = meta.findall("rim:RegistryObjectList/rim:RegistryPackage", NS)
    assert slot(ss, "intendedRecipient") == ["^^Internet^x@demo.mssante.fr"]
    [assoc] = meta.findall("rim:RegistryObjectList/rim:Association", NS)
    assert (assoc.get("sourceObject"), assoc.get("targetObject")) == (ss.get("id"), de.get("id"))
    assert assoc.get("associationType") == xdm.HAS_MEMBER
    [marker] = [
        c
        for c in meta.findall("rim:RegistryObjectList/rim:Classification", NS)
        if c.get("classifiedObject") == ss.get("id")
    ]
    assert marker.get("classificationNode") == xdm.SUBMISSION_SET


async def test_a_recovered_identity_travels_without_its_ins(app, client, users, smtp):
    msg, pdf = await send_report(app, client, users, smtp, "y@demo.mssante.fr", status="recovered")
    assert msg["X-MSS-CODECDA"] == "11488-4"
    assert msg["X-MSS-INS"] is None
    zf = archive_of(msg)
    for name in zf.namelist():
        assert INS.encode() not in zf.read(name), name
    meta = ET.fromstring(zf.read("IHE_XDM/SUBSET01/METADATA.XML"))
    [de] = meta.findall("rim:RegistryObjectList/rim:ExtrinsicObject", NS)
    assert slot(de, "sourcePatientId") == []
    assert [v for v in slot(de, "sourcePatientInfo") if v.startswith("PID-7")] == ["PID-7|19800101"]
    schemes = {e.get("identificationScheme") for e in de.findall("rim:ExternalIdentifier", NS)}
    assert xdm.DE["patientId"] not in schemes
    cda = ET.fromstring(zf.read("IHE_XDM/SUBSET01/DOC0001.XML"))
    assert cda.find("cda:recordTarget/cda:patientRole/cda:id", NS).get("nullFlavor") == "NI"
    text = cda.find("cda:component/cda:nonXMLBody/cda:text", NS)
    assert base64.b64decode(text.text) == pdf
