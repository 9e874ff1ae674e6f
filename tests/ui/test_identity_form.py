"""The identity form (INS, identity-vigilance): the birth place's INSEE code comes from the
commune table by postcode, an INS is entered with its OID and a status on its evidence, and
the identity card shows the status history and moves it with a reason."""

from __future__ import annotations

import pytest

from core.context import DB
from dossier.identity.ins import ins_with_key
from tests.ui.conftest import open_session, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


async def test_identity_form_with_ins_status_and_birth_place(pages, app, users):
    from dossier.seed import seed_demo

    await seed_demo(app[DB], users)
    req = await pages.new()
    await open_session(req, app, users["requester"])
    await req.goto("/app/")
    await req.get_by_role("link", name="Nouvelle demande d'avis").click()
    await req.get_by_role("heading", name="Recherche de patient").wait_for()
    await req.get_by_role("button", name="Créer une identité").click()
    await req.get_by_label("Nom de naissance *").fill("GIRAUD")
    await req.get_by_label("1er prénom *").fill("Hélène")
    await req.get_by_label("Prénoms de naissance (liste)").fill("Hélène Marie")
    await req.get_by_label("Sexe *").select_option("F")
    await req.get_by_label("Date de naissance *").fill("1950-03-12")
    # A postcode of one commune fills the commune and its INSEE code.
    await req.get_by_label("Code postal du lieu de naissance").fill("38000")
    insee = req.get_by_label("Code INSEE du lieu de naissance")
    await req.wait_for_function(
        "() => document.getElementById('pc-birth_insee_code').value === '38185'"
    )
    assert await req.get_by_label("Commune de naissance").input_value() == "Grenoble"
    # A postcode of several communes asks which one.
    await req.get_by_label("Code postal du lieu de naissance").fill("29880")
    choice = req.locator("select#pc-birth_place")  # appears once the communes are fetched
    await choice.wait_for()
    await choice.select_option("29195")  # Plouguerneau
    assert await insee.input_value() == "29195"
    await req.get_by_label("Matricule INS (NIR ou NIA)").fill(ins_with_key("2500329195001"))
    await req.get_by_label("Statut de l'identité").select_option("qualified")
    await req.get_by_label("INS récupéré par le téléservice INSi").check()
    await req.get_by_label("Pièce d'identité à haut niveau de confiance contrôlée").select_option(
        "identity_card"
    )
    reason = req.get_by_label("Motif du changement de statut")
    await reason.fill("INSi et CNI vérifiées à l'accueil")
    await shot(req, "wizard-identity-ins")
    await req.get_by_role("button", name="Valider").click()
    await req.get_by_role("heading", name="Vérifiez l'identité du patient").wait_for()
    history = req.get_by_role("heading", name="Historique du statut de l'identité")
    await history.wait_for()
    await req.get_by_text("INSi et CNI vérifiées à l'accueil").wait_for()
    await req.get_by_text("Identité qualifiée — Carte nationale d'identité").wait_for()

    # A doubt on the document: back to recovered, with a reason.
    await req.get_by_label("Nouveau statut").select_option("recovered")
    await req.get_by_label("Motif du changement de statut *").fill("Pièce d'identité douteuse")
    await req.get_by_role("button", name="Changer le statut").click()
    await req.get_by_text("Pièce d'identité douteuse").wait_for()
    await req.locator("dd", has_text="Identité récupérée").wait_for()
    await shot(req, "wizard-identity-status-history")


async def test_dossier_page_shows_the_identity_status_and_its_panel(pages, app, users):
    from dossier.seed import seed_demo

    await seed_demo(app[DB], users)
    req = await pages.new()
    await open_session(req, app, users["requester"])
    await req.goto("/app/")
    await req.locator("a.patient-name", has_text="SEVESTRE").first.click()
    await req.get_by_text("Identité qualifiée").first.wait_for()
    await req.get_by_text("Historique du statut de l'identité — Identité qualifiée").click()
    await req.get_by_text("Identité de démonstration").wait_for()  # the seed's history row
    await shot(req, "dossier-identity-status")
