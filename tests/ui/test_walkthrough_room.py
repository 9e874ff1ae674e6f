"""The call's screens that failed in the walk-throughs (issue 16, item 6): on a 390 px phone
the controls keep their words under the icons and the other person fills the screen with
one's own camera small in a corner; each dialog is named by its own title; the chat reaches
a connected colleague outside the room (seed 001); the network bars stop saying « bon » when
no picture arrives any more. A patient follows the invitation link on a phone."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.ui.conftest import open_session, shot, wait_js
from tests.ui.room_call import EXPERT, two_in_a_room
from tests.ui.test_accessibility import audit
from tests.ui.test_walkthrough_screens import PHONE, fits

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

# Every control shows its label, on one line for « Quitter »; one's own tile is much smaller
# than the other person's.
CALL_LAYOUT_JS = """() => {
    const ctls = [...document.querySelectorAll('.controls .ctl')];
    const hidden = ctls.filter((b) => {
        const l = b.querySelector('.ctl-label');
        const r = l && l.getBoundingClientRect();
        return !r || r.width < 8 || r.height < 8 || getComputedStyle(l).clip !== 'auto';
    }).map((b) => b.textContent.trim());
    const leave = document.querySelector('.controls .ctl.leave .ctl-label');
    const lh = parseFloat(getComputedStyle(leave).lineHeight) || 14;
    const area = (el) => { const r = el.getBoundingClientRect(); return r.width * r.height; };
    const local = document.querySelector('.tile.local');
    const remote = document.querySelector('.tile:not(.local)');
    return {hidden, leaveLines: Math.round(leave.getBoundingClientRect().height / lh),
            ratio: remote && local ? area(remote) / area(local) : 0};
}"""

DIALOG_IDS_JS = """() => {
    const ids = [...document.querySelectorAll('[id]')].map((e) => e.id);
    const dupes = ids.filter((id, i) => ids.indexOf(id) !== i);
    const dialogs = [...document.querySelectorAll('dialog')].map((d) => {
        const t = document.getElementById(d.getAttribute('aria-labelledby'));
        return t && d.contains(t) ? null : d.getAttribute('aria-labelledby');
    }).filter(Boolean);
    return {dupes, dialogs, count: document.querySelectorAll('dialog').length};
}"""


async def check_call_layout(page: Any, name: str) -> None:
    layout = await wait_js(
        page, f"() => {{ const x = ({CALL_LAYOUT_JS})(); return x.ratio > 0 ? x : null; }}"
    )
    assert not layout["hidden"], f"{name}: controls without a visible label: {layout['hidden']}"
    assert layout["leaveLines"] == 1, f"{name}: « Quitter » on {layout['leaveLines']} lines"
    assert layout["ratio"] > 3, f"{name}: the other person is not large: {layout}"


async def test_call_on_a_phone_chat_to_a_colleague_and_bars_that_follow_reception(
    pages, app, users
):
    call = await two_in_a_room(pages, app, users, host_viewport=PHONE, bypass_csp=True)
    host, expert = call.host, call.expert

    # A colleague signed in elsewhere in the application, not in the room.
    secretary = await pages.new()
    await open_session(secretary, app, users["secretary"])
    await secretary.goto("/app/")
    await secretary.get_by_role("heading", name="Vue activité").wait_for()

    await check_call_layout(host, "host-390")
    await shot(host, "walkthrough-call-host-390", full_page=False)
    await fits(host, "call-host-390")
    ids = await host.evaluate(DIALOG_IDS_JS)
    assert ids["count"] >= 4 and not ids["dupes"] and not ids["dialogs"], ids

    await host.get_by_role("button", name=re.compile("^Discussion")).click()
    to = host.get_by_label("Destinataire")
    await wait_js(
        host,
        "() => [...document.querySelectorAll('#chat-to optgroup')].some((g) =>"
        " g.label.startsWith('Collègues connectés') && g.textContent.includes('Sophie Durand'))",
        timeout=60,
    )
    await to.select_option(label="Sophie Durand")
    await host.get_by_label("Message", exact=True).fill("Pouvez-vous prévenir la famille ?")
    await host.get_by_role("button", name="Envoyer", exact=True).click()
    await host.locator(".chat-msg", has_text="→ Sophie Durand").wait_for()
    await secretary.get_by_text("Nouveau message de Dr Claire Martin").wait_for()
    await shot(host, "walkthrough-call-chat-colleague-390", full_page=False)
    problems = await audit(host, "walkthrough-call-host-chat-390")

    # The expert's camera stops sending: the host's bars for him leave « bon » within seconds.
    expert_tile = host.locator(".tile[data-participant]:not(.local)", has_text=EXPERT)
    await expert_tile.get_by_role("img", name=re.compile("^Réseau")).wait_for()
    await expert.evaluate(
        "() => document.querySelector('.tile.local video').srcObject"
        ".getVideoTracks().forEach((t) => t.stop())"
    )
    await expert_tile.get_by_role("img", name="Réseau : pas d'image reçue").wait_for(timeout=30000)
    await host.get_by_role("button", name="Fermer").click()
    await shot(host, "walkthrough-call-no-picture-390", full_page=False)
    assert not problems, "\n".join(problems)
    assert not pages.errors, pages.errors


async def test_patient_call_on_a_phone_has_labelled_controls_and_a_large_doctor(
    pages, app, users, smtp
):
    from tests.ui.conftest import call_api

    host = await pages.new(viewport={"width": 1440, "height": 900}, bypass_csp=True)
    await open_session(host, app, users["requester"])
    await host.goto("/app/")
    room = await call_api(
        host, "POST", "/api/v1/rooms", {"kind": "teleconsultation", "title": "Téléconsultation"}
    )
    await host.goto(f"/app/rooms/{room['id']}")
    await host.get_by_text("Dr Claire Martin (vous)").wait_for()
    await call_api(
        host,
        "POST",
        f"/api/v1/rooms/{room['id']}/invitations",
        {"name": "Jeanne Dupont", "email": "jeanne.dupont@example.org"},
    )
    [mail] = await smtp.wait_for("jeanne.dupont@example.org")
    link = re.search(r"/join/[A-Za-z0-9._~-]+", smtp.text_of(mail))
    assert link

    patient = await pages.new(viewport=PHONE, bypass_csp=True)
    await patient.goto(link.group(0))
    await patient.get_by_role("button", name="C'est bien moi").click()
    await patient.get_by_role("button", name="Suivant").click()
    await patient.get_by_role("button", name="Rejoindre la salle d'attente").click()
    await host.get_by_role("button", name="1 en salle d'attente").click()
    await host.get_by_role("button", name="Faire entrer").click()
    await patient.get_by_text("Jeanne Dupont (vous)").wait_for()
    await host.get_by_role("button", name="Fermer").click()

    await check_call_layout(patient, "patient-390")
    await patient.locator(".tile:not(.local) video:not(.hidden)").wait_for()
    await shot(patient, "walkthrough-call-patient-390", full_page=False)
    await fits(patient, "call-patient-390")
    problems = await audit(patient, "walkthrough-call-patient-390")
    ids = await patient.evaluate(DIALOG_IDS_JS)
    assert not ids["dupes"] and not ids["dialogs"], ids

    await shot(host, "walkthrough-call-host-1440", full_page=False)
    await fits(host, "call-host-1440")
    problems += await audit(host, "walkthrough-call-host-1440")
    ids = await host.evaluate(DIALOG_IDS_JS)
    assert ids["count"] >= 4 and not ids["dupes"] and not ids["dialogs"], ids
    assert not problems, "\n".join(problems)
    assert not pages.errors, pages.errors
