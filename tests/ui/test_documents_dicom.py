"""A radiologist on a tablet reads a CT series on the dossier page (issue 6, item 4): the exam
is listed by study and series, the series scrolls in instance order whatever the upload
order (keys, slider, wheel), a multi-frame file frame by frame, window presets, and two
series side by side. What is shown is read from the page's pixels, not assumed."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from pydicom.uid import generate_uid

from core.context import DB
from tests.support.dicom_series import Study, multiframe, series_slice
from tests.support.documents import make_dossier
from tests.ui.conftest import open_session, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

UPLOAD_ORDER = [3, 1, 5, 2, 4]
LEVEL = {1: -120.0, 2: -40.0, 3: 40.0, 4: 120.0, 5: 200.0}  # HU, inside the 40/400 window
FRAMES = [-150.0, -50.0, 50.0, 150.0]
TABLET = {"width": 1180, "height": 820}

# The shown image's data attributes and the mean grey of its middle third, once decoded.
SHOWN = """img => new Promise((resolve) => {
  const read = () => {
    const c = document.createElement("canvas");
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    const w = Math.floor(c.width / 3), h = Math.floor(c.height / 3);
    const d = g.getImageData(w, h, w, h).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += d[i];
    resolve({index: Number(img.dataset.index), instance: Number(img.dataset.instance),
      frame: Number(img.dataset.frame), src: img.src, mean: sum / (d.length / 4)});
  };
  if (img.complete && img.naturalWidth) read();
  else img.addEventListener("load", read, {once: true});
})"""


async def shown(pane: Any, index: int) -> dict[str, Any]:
    img = pane.locator(f"img.dicom-img[data-index='{index}']")
    await img.wait_for()
    return dict(await img.evaluate(SHOWN))


async def replaced(pane: Any, src: str, timeout: float = 15.0) -> dict[str, Any]:
    """The shown image once it is another picture than ``src`` (e.g. after a new window)."""
    img = pane.locator("img.dicom-img")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await img.get_attribute("src") == src:
        assert loop.time() < deadline, "the image did not change"
        await asyncio.sleep(0.1)
    return dict(await img.evaluate(SHOWN))


async def test_a_series_scrolls_in_instance_order_and_a_multiframe_file_frame_by_frame(
    pages, app, users, tmp_path
):
    dossier_id = await make_dossier(app[DB], users)
    study = Study(description="SCANNER THORACO-ABDOMINAL")
    series_uid = generate_uid()
    files = []
    for n in UPLOAD_ORDER:
        path = tmp_path / f"CT-{n:03d}.dcm"
        path.write_bytes(
            series_slice(study, series_uid, instance=n, level_hu=LEVEL[n], z=-10.0 * n, size=256)
        )
        files.append(str(path))
    coronal = tmp_path / "CT-coronal-multiframe.dcm"
    coronal.write_bytes(multiframe(study, levels_hu=FRAMES, size=256))
    files.append(str(coronal))

    page = await pages.new(viewport=TABLET)
    await open_session(page, app, users["expert"])
    await page.goto(f"/app/dossiers/{dossier_id}")
    await page.get_by_role("heading", name="Documents").wait_for()
    await page.locator("input[type=file][multiple]").set_input_files(files)

    # The exam, then its two series with their modality and number of images.
    exam = page.get_by_role("region", name="SCANNER THORACO-ABDOMINAL")
    axial_row = exam.locator(".dicom-series-list li", has_text="Série 2 · THORAX AXIAL")
    await axial_row.get_by_text("CT · 5 images").wait_for(timeout=30_000)
    coronal_row = exam.locator(".dicom-series-list li", has_text="RECONSTRUCTION CORONALE")
    await coronal_row.get_by_text("CT · 4 images").wait_for()
    await exam.get_by_text("6 fichiers").wait_for()

    await axial_row.get_by_role("button", name="Ouvrir la série").click()
    axial = page.get_by_role("figure", name="Visionneuse DICOM : Série 2 · THORAX AXIAL")
    seen = [await shown(axial, 1)]
    assert seen[0]["instance"] == 1
    await axial.get_by_text("Image 1 / 5").first.wait_for()

    # Keys: down arrow three times, then the slider to the last image.
    await axial.get_by_role("group", name="Image 1 / 5").focus()
    viewport = axial.locator(".dicom-viewport")
    for i in range(2, 5):
        await page.keyboard.press("ArrowDown")
        seen.append(await shown(axial, i))
    await axial.get_by_role("slider", name="Image").fill("5")
    seen.append(await shown(axial, 5))
    assert [s["instance"] for s in seen] == [1, 2, 3, 4, 5]
    means = [s["mean"] for s in seen]
    assert all(a < b - 5 for a, b in itertools.pairwise(means)), means
    assert len({s["src"] for s in seen}) == 5

    # Back with Home, forward with the mouse wheel, back with PageUp (a tenth of the series).
    await viewport.focus()
    await page.keyboard.press("Home")
    assert (await shown(axial, 1))["instance"] == 1
    box = await axial.locator(".dicom-viewport").bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.wheel(0, 100)
    assert (await shown(axial, 2))["instance"] == 2
    await page.keyboard.press("End")
    await page.keyboard.press("PageUp")
    assert (await shown(axial, 4))["instance"] == 4
    await axial.get_by_role("button", name="Image suivante").click()
    assert (await shown(axial, 5))["instance"] == 5

    # A window preset: through the lung window (-600/1500) soft tissue at 40 HU is light
    # grey (PS3.3's linear function), where the file's 40/400 showed it mid-grey.
    await viewport.focus()
    await page.keyboard.press("ArrowUp")
    await page.keyboard.press("ArrowUp")
    before = await shown(axial, 3)
    assert abs(before["mean"] - 255 * (40 + 160) / 400) < 4, before["mean"]
    await axial.get_by_label("Fenêtrage").select_option(label="Poumon (-600 / 1500)")
    await axial.get_by_text("Niveau -600 · Largeur 1500").wait_for()
    lung = await replaced(axial, before["src"])
    assert lung["instance"] == 3
    expected = 255 * ((40 + 600.5) / 1499 + 0.5)
    assert abs(lung["mean"] - expected) < 4, (lung["mean"], expected)

    # Drag-to-window: with the « Fenêtrage » tool, dragging right widens the window.
    await axial.get_by_role("button", name="Fenêtrage").click()
    box = await axial.locator(".dicom-viewport").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    await page.mouse.move(x, y)
    await page.mouse.down()
    await page.mouse.move(x + 50, y, steps=5)
    await page.mouse.move(x + 100, y, steps=5)
    await page.mouse.up()
    await axial.get_by_text("Niveau -600 · Largeur 2500").wait_for()
    assert await axial.get_by_label("Fenêtrage").input_value() == "custom"
    wide = await replaced(axial, lung["src"])
    assert wide["instance"] == 3 and wide["mean"] < lung["mean"] - 5  # a wider window: greyer
    # With « Défiler », dragging down goes forward through the series.
    await axial.get_by_role("button", name="Défiler").click()
    await page.mouse.move(x, y - 40)
    await page.mouse.down()
    await page.mouse.move(x, y + 20, steps=6)
    await page.mouse.up()
    assert (await shown(axial, 5))["instance"] == 5

    # The multi-frame file, side by side with the axial series, frame by frame.
    await coronal_row.get_by_role("button", name="Ouvrir la série").click()
    cor = page.get_by_role("figure", name="Visionneuse DICOM : Série 3 · RECONSTRUCTION CORONALE")
    frames = [await shown(cor, 1)]
    await cor.get_by_text("Trame 1 / 4").wait_for()
    await cor.locator(".dicom-viewport").focus()
    for i in range(2, 5):
        await page.keyboard.press("ArrowRight")
        frames.append(await shown(cor, i))
    await cor.get_by_text("Trame 4 / 4").wait_for()
    assert [f["frame"] for f in frames] == [1, 2, 3, 4]
    fmeans = [f["mean"] for f in frames]
    assert all(a < b - 5 for a, b in itertools.pairwise(fmeans)), fmeans
    assert await axial.locator(".dicom-viewport").count() == 1  # still open next to it
    await axial.locator(".dicom-viewport").focus()
    await page.keyboard.press("ArrowUp")  # the chosen window stays on while scrolling
    assert (await shown(axial, 4))["instance"] == 4
    await axial.get_by_text("Niveau -600 · Largeur 2500").wait_for()
    await shot(page, "dossier-dicom-series", full_page=False)
    await page.locator(".viewer").scroll_into_view_if_needed()
    await shot(page, "dossier-dicom-viewer", full_page=False)

    # On a phone the panes stack, and nothing is wider than the screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    await axial.locator(".dicom-viewport").scroll_into_view_if_needed()
    wide = await page.evaluate(
        """() => [...document.querySelectorAll('body *')].filter((e) =>
            e.getBoundingClientRect().right > 391).map((e) =>
            e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""
    )
    assert not wide, "\n".join(wide)
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390
    await axial.get_by_role("button", name="Image précédente").click()
    assert (await shown(axial, 3))["instance"] == 3
    await shot(page, "dossier-dicom-phone", full_page=False)
    assert not pages.errors, pages.errors


async def test_the_series_viewer_and_the_upload_list_pass_axe(pages, app, users, tmp_path):
    """WCAG 2.1 AA (axe-core, as tests/ui/test_accessibility.py runs it) with a series open
    and the upload list showing a refusal, on a tablet and on a phone."""
    from tests.ui.test_accessibility import PHONE, audit

    dossier_id = await make_dossier(app[DB], users)
    study, uid = Study(), generate_uid()
    files = []
    for n in (2, 1, 3):
        path = tmp_path / f"CT-{n}.dcm"
        path.write_bytes(series_slice(study, uid, instance=n, level_hu=LEVEL[n], size=128))
        files.append(str(path))
    refused = tmp_path / "notes.exe"
    refused.write_bytes(b"MZ\x90\x00" * 100)
    files.append(str(refused))
    page = await pages.new(viewport=TABLET, bypass_csp=True)
    await open_session(page, app, users["expert"])
    await page.goto(f"/app/dossiers/{dossier_id}")
    await page.get_by_role("heading", name="Documents").wait_for()
    await page.locator("input[type=file][multiple]").set_input_files(files)
    await page.locator(".upload-item", has_text="notes.exe").get_by_text("Non ajouté").wait_for()
    row = page.locator(".dicom-series-list li", has_text="THORAX AXIAL")
    await row.get_by_role("button", name="Ouvrir la série").click()
    pane = page.get_by_role("figure", name="Visionneuse DICOM : Série 2 · THORAX AXIAL")
    await shown(pane, 1)
    problems = await audit(page, "dossier-dicom-tablet")
    await page.set_viewport_size(PHONE)
    await pane.scroll_into_view_if_needed()
    problems += await audit(page, "dossier-dicom-phone")
    assert not problems, "\n".join(problems)
    assert not pages.errors, pages.errors
