"""DICOM series for the viewer: studies → series → instances in scrolling order, any frame
of a multi-frame file, and a window chosen by the viewer (presets, dragging)."""

from __future__ import annotations

import io
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image
from pydicom.uid import generate_uid
from sqlalchemy import select

from core.accounts import User
from core.audit import AuditEntry
from core.context import DB
from dossier.documents.dicom import instance_sort_key, read_metadata, render_frame
from tests.support.dicom_series import Study, multiframe, series_slice
from tests.support.documents import make_dossier, pdf_bytes

# Upload order ≠ instance order: the listing must sort them.
UPLOAD_ORDER = [3, 1, 5, 2, 4]
LEVEL = {1: -120.0, 2: -40.0, 3: 40.0, 4: 120.0, 5: 200.0}  # HU, inside the file's 40/400 window
FRAMES = [-150.0, -50.0, 50.0, 150.0]


def _centre_mean(png: bytes) -> float:
    """Mean grey of the image's middle (the slice's body), whatever the rendered size."""
    im = Image.open(io.BytesIO(png)).convert("L")
    w, h = im.size
    return float(np.asarray(im)[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].mean())


async def _upload(client, dossier_id, name, data):
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/documents?filename={quote(name)}", data=data
    )
    assert r.status == 201, await r.text()
    return await r.json()


@pytest.fixture
async def exam(app, client, users):
    """A dossier with a 5-slice series (uploaded out of order) and a 4-frame file."""
    dossier_id = await make_dossier(app[DB], users)
    await client.sign_in_as(users["requester"].id)
    study = Study()
    series_uid = generate_uid()
    by_instance = {}
    for n in UPLOAD_ORDER:
        doc = await _upload(
            client,
            dossier_id,
            f"coupe-{n}.dcm",
            series_slice(study, series_uid, instance=n, level_hu=LEVEL[n], z=10.0 * n),
        )
        by_instance[n] = doc["id"]
    mf = await _upload(client, dossier_id, "coronal.dcm", multiframe(study, levels_hu=FRAMES))
    return {"dossier": dossier_id, "slices": by_instance, "multiframe": mf, "study": study}


def _preview(dossier_id, doc_id, **q):
    qs = "&".join(f"{k}={v}" for k, v in q.items())
    return f"/api/v1/dossiers/{dossier_id}/documents/{doc_id}/preview" + (f"?{qs}" if qs else "")


async def test_the_listing_groups_a_study_into_series_in_instance_order(client, exam):
    r = await client.get(f"/api/v1/dossiers/{exam['dossier']}/documents")
    assert r.status == 200
    [dicom] = [c for c in (await r.json())["categories"] if c["code"] == "dicom"]
    [study] = dicom["studies"]
    assert study["study_uid"] == exam["study"].study_uid and study["instances"] == 6
    axial, coronal = study["series"]  # by series number: 2, then 3
    assert (axial["number"], axial["description"], axial["modality"]) == ("2", "THORAX AXIAL", "CT")
    assert axial["instances"] == 5 and axial["images"] == 5
    assert [i["instance_number"] for i in axial["items"]] == [1, 2, 3, 4, 5]
    assert [i["document_id"] for i in axial["items"]] == [exam["slices"][n] for n in range(1, 6)]
    assert [i["slice_location"] for i in axial["items"]] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert coronal["description"] == "RECONSTRUCTION CORONALE"
    assert (coronal["instances"], coronal["images"]) == (1, 4)
    assert coronal["items"] == [
        {
            "document_id": exam["multiframe"]["id"],
            "instance_number": 1,
            "frames": 4,
            "slice_location": None,
        }
    ]


async def test_each_frame_of_a_multiframe_file_is_rendered_and_audited(client, app, exam):
    d, mf = exam["dossier"], exam["multiframe"]["id"]
    means = []
    for frame in range(1, 5):
        r = await client.get(_preview(d, mf, frame=frame))
        assert r.status == 200, await r.text()
        assert r.content_type == "image/png"
        assert r.headers["X-Frame-Count"] == "4"
        assert (r.headers["X-Window-Center"], r.headers["X-Window-Width"]) == ("40", "400")
        means.append(_centre_mean(await r.read()))
    # Frames at -150, -50, 50, 150 HU through the 40/400 window: four different greys.
    assert means == sorted(means) and len({round(m) for m in means}) == 4
    assert abs(means[2] - 255 * (50 + 160) / 400) < 3

    r = await client.get(_preview(d, mf, frame=5))
    assert r.status == 422
    body = await r.json()
    assert r.content_type == "application/problem+json"
    assert (body["code"], body["frames"]) == ("frame_out_of_range", 4)
    r = await client.get(_preview(d, mf, frame=0))
    assert r.status == 422 and (await r.json())["code"] == "validation_failed"
    r = await client.get(_preview(d, exam["slices"][1], frame=2))  # a single-frame file
    assert r.status == 422 and (await r.json())["code"] == "frame_out_of_range"

    async with app[DB].read() as s:
        rows = (
            (
                await s.execute(
                    select(AuditEntry).where(
                        AuditEntry.action == "document.read", AuditEntry.object_id == mf
                    )
                )
            )
            .scalars()
            .all()
        )
    assert sorted(r.details["frame"] for r in rows if r.details.get("what") == "preview") == [
        1,
        2,
        3,
        4,
    ]


async def test_a_window_chosen_by_the_viewer_replaces_the_files(client, exam):
    d, slice3 = exam["dossier"], exam["slices"][3]  # body at 40 HU
    r = await client.get(_preview(d, slice3, frame=1))
    default = _centre_mean(await r.read())
    assert abs(default - 255 * (40 + 160) / 400) < 3  # the file's 40/400
    # "Poumon" (-600/1500): 40 HU sits high in the window.
    r = await client.get(_preview(d, slice3, wc=-600, ww=1500))
    assert r.status == 200, await r.text()
    assert (r.headers["X-Window-Center"], r.headers["X-Window-Width"]) == ("-600", "1500")
    lung = _centre_mean(await r.read())
    assert abs(lung - 255 * (40 + 600 + 750) / 1500) < 3
    # A narrow window centred on the body: mid-grey.
    r = await client.get(_preview(d, slice3, frame=1, wc=40, ww=80))
    assert abs(_centre_mean(await r.read()) - 128) < 3

    r = await client.get(_preview(d, slice3, wc=40))
    assert r.status == 422 and (await r.json())["code"] == "window_incomplete"
    r = await client.get(_preview(d, slice3, wc=40, ww=0))
    assert r.status == 422
    pdf = await _upload(client, d, "bilan.pdf", pdf_bytes(1))
    r = await client.get(_preview(d, pdf["id"], frame=1))
    assert r.status == 422 and (await r.json())["code"] == "not_dicom"
    r = await client.get(_preview(d, pdf["id"]))  # the stored preview is unchanged
    assert r.status == 200 and r.content_type == "image/png"


async def test_a_practitioner_outside_the_dossier_gets_no_frame(app, client, users, exam):
    from dossier.seed import seed_demo
    from tests.dossier.dossier_fixtures import CARDIO_EMAIL

    await seed_demo(app[DB], users)
    async with app[DB].read() as s:
        outsider = (await s.execute(select(User).where(User.email == CARDIO_EMAIL))).scalar_one()
    await client.sign_in_as(outsider.id)
    r = await client.get(_preview(exam["dossier"], exam["multiframe"]["id"], frame=2))
    assert r.status == 404 and r.content_type == "application/problem+json"
    client.sign_out()
    r = await client.get(_preview(exam["dossier"], exam["multiframe"]["id"], frame=2))
    assert r.status == 401


def test_order_falls_back_to_slice_location_then_position_along_the_normal(tmp_path):
    study, uid = Study(), generate_uid()
    metas = []
    for z in (30.0, 10.0, 20.0):
        path = tmp_path / f"{z}.dcm"
        path.write_bytes(series_slice(study, uid, instance=None, level_hu=0, z=z))
        metas.append(read_metadata(path).as_dict())
    assert [m["instance_number"] for m in metas] == [None, None, None]
    assert [m["slice_location"] for m in sorted(metas, key=instance_sort_key)] == [10, 20, 30]
    # Without Slice Location, the position projected on the normal: a sagittal stack with
    # rows along +y and columns along -z has its normal along -x, so +x comes first.
    sagittal = [
        {"image_position": [x, 0.0, 0.0], "image_orientation": [0, 1, 0, 0, 0, -1]}
        for x in (-5.0, 5.0, 0.0)
    ]
    assert [m["image_position"][0] for m in sorted(sagittal, key=instance_sort_key)] == [
        5.0,
        0.0,
        -5.0,
    ]
    # Instance Number wins over position; a file without any of them comes last.
    mixed = [{"instance_number": 2, "slice_location": 1.0}, {}, {"instance_number": 1}]
    assert sorted(mixed, key=instance_sort_key) == [mixed[2], mixed[0], mixed[1]]


def test_render_frame_reads_only_the_asked_frame_and_keeps_monochrome1_inverted(tmp_path):
    path = tmp_path / "mf.dcm"
    path.write_bytes(multiframe(Study(), levels_hu=FRAMES))
    out = [render_frame(path, k) for k in range(4)]
    assert all(o is not None for o in out)
    means = [_centre_mean(o.png) for o in out if o]
    assert means == sorted(means) and len(set(means)) == 4
    middle = render_frame(path, None)
    assert middle is not None and middle.frame == 2 and middle.frames == 4
    info = read_metadata(path)
    assert (info.frames, info.window_center, info.window_width) == (4, 40.0, 400.0)


def test_a_ybr_colour_image_keeps_its_colours(tmp_path):
    """pydicom's decoder already turns YBR_FULL into RGB: converting again would shift them."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.pixels import convert_color_space
    from pydicom.uid import ExplicitVRLittleEndian

    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 30, 30  # a wound photo's red
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 8, 8, 3
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "YBR_FULL", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = convert_color_space(rgb, "RGB", "YBR_FULL").tobytes()
    path = tmp_path / "photo.dcm"
    ds.save_as(path, enforce_file_format=True)
    out = render_frame(path, 0, window=(40, 400))  # a window does not apply to colour
    assert out is not None and out.window_center is None
    r, g, b = Image.open(io.BytesIO(out.png)).convert("RGB").getpixel((4, 4))
    assert abs(r - 200) <= 2 and abs(g - 30) <= 2 and abs(b - 30) <= 2
