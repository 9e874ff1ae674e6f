"""The téléexpertise through the pages (seed 000): the activity view with the seed's columns,
the whole wizard (identity creation, consent, recipients from the directory, request type),
then the requester's and the expert's signatures on the dossier page."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image, ImageDraw

from core.context import DB
from tests.ui.conftest import open_session, shot


def png(size: tuple[int, int], colour: str, text: str = "") -> bytes:
    img = Image.new("RGB", size, colour)
    if text:
        ImageDraw.Draw(img).text((10, size[1] // 2), text, fill="black")
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


async def test_wizard_then_both_signatures(pages, app, users):
    from dossier.seed import seed_demo

    await seed_demo(app[DB], users)
    req = await pages.new()
    await open_session(req, app, users["requester"])
    await req.goto("/app/")
    await req.get_by_role("heading", name="Vue activité").wait_for()
    for column in ("Patient", "Sexe", "Requérant", "Modifié le", "Statut", "Actions"):
        await req.get_by_role("columnheader", name=column, exact=True).wait_for()
    await req.locator("tbody tr").first.wait_for()
    await shot(req, "activity-with-dossiers")

    await req.get_by_role("link", name="Nouvelle demande d'avis").click()
    await req.get_by_role("heading", name="Recherche de patient").wait_for()
    await req.get_by_label("Nom, prénom").fill("Moreau")
    await req.get_by_role("button", name="Rechercher").click()
    await req.get_by_role("button", name="Créer une identité").click()
    await req.get_by_label("Nom de naissance *").fill("MOREAU")
    await req.get_by_label("1er prénom *").fill("Lucienne")
    await req.get_by_label("Sexe *").select_option("F")
    await req.get_by_label("Date de naissance *").fill("1941-03-12")
    await req.get_by_label("Commune de naissance").fill("Lyon")
    await shot(req, "wizard-create-identity")
    await req.get_by_role("button", name="Valider").click()
    await req.get_by_role("heading", name="Vérifiez l'identité du patient").wait_for()
    await req.get_by_role("button", name="Suivant").click()

    await req.get_by_text("Le patient a-t-il été informé").click()
    await req.get_by_label("Commentaire *").fill(
        "Patiente informée, accord oral en présence de sa fille."
    )
    await req.get_by_text("Le dossier est urgent").click()
    await shot(req, "wizard-consent")
    await req.get_by_role("button", name="Suivant").click()

    await req.get_by_label("Spécifier une spécialité").select_option("Endocrinologie-diabétologie")
    await req.get_by_role("button", name="Rechercher").click()
    offer = req.locator(
        "section[aria-labelledby=co-results] button.choice", has_text="Benali"
    ).first
    await offer.wait_for()
    await offer.click()
    await req.get_by_role("heading", name="Destinataires sélectionnés (1)").wait_for()
    await shot(req, "wizard-recipients")
    await req.get_by_role("button", name="Suivant").click()

    await req.get_by_text("Téléexpertise diabétologie-endocrinologie").click()
    await req.get_by_role("button", name="Suivant").click()
    await req.get_by_role("heading", name="Récapitulatif").wait_for()
    await req.get_by_role("button", name="Ouvrir le télédossier").click()

    await req.get_by_text("MOREAU Lucienne").first.wait_for()
    await req.get_by_text("Demande d'avis initiale").first.wait_for()
    dossier_url = req.url
    await req.get_by_label("Motif *").select_option("Déséquilibre glycémique")
    await req.get_by_label("Type de diabète *").select_option("Type 2")
    await req.get_by_label("Traitement actuel *").fill("Metformine 1 g matin et soir.")
    await req.get_by_label("Question posée *").fill("Faut-il introduire une insuline basale ?")
    await req.get_by_role("button", name="Signer").click()
    await req.get_by_role("dialog").get_by_role("button", name="Signer").click()
    await req.get_by_text("Avis en attente d'expertise").first.wait_for()
    await req.get_by_text(re.compile("Signé par Dr Claire Martin")).wait_for()
    assert await req.get_by_label("Question posée *").is_disabled()
    await shot(req, "dossier-requester-signed")

    exp = await pages.new()
    await open_session(exp, app, users["expert"])
    await exp.goto(dossier_url.replace(pages.base_url, ""))
    await exp.get_by_label("Avis du médecin requis *").fill(
        "Introduire une insuline basale 10 UI le soir, titration +2 UI tous les 3 jours."
    )
    await exp.get_by_label("Réévaluation *").select_option("3 mois")
    await exp.get_by_role("button", name="Signer").click()
    await exp.get_by_role("dialog").get_by_role("button", name="Signer").click()
    await exp.get_by_text("Dossier expertisé").first.wait_for()
    await shot(exp, "dossier-expert-signed")

    # The expert's signature picture, from Settings ("Charger une signature").
    await exp.goto("/app/settings")
    await exp.locator("#signature-file").set_input_files(
        {
            "name": "signature.png",
            "mimeType": "image/png",
            "buffer": png((300, 100), "white", "K. Benali"),
        }
    )
    await exp.get_by_alt_text("Votre signature").wait_for()
    await exp.goto(dossier_url.replace(pages.base_url, ""))

    # Add a photo with the progress bar, view it, adjust it, stamp the signature on it.
    await exp.locator("input[type=file][multiple]").set_input_files(
        {"name": "photo-pied.png", "mimeType": "image/png", "buffer": png((640, 480), "#c89070")}
    )
    await exp.get_by_text("« photo-pied.png » ajouté au dossier.").wait_for()
    photo = exp.locator(".doc-list li", has_text="photo-pied.png")
    await photo.get_by_role("button", name="Afficher").click()
    viewer = exp.get_by_label("Visionneuse")
    await viewer.get_by_alt_text("photo-pied.png").wait_for()
    await viewer.get_by_label("Contraste").fill("180")
    assert "contrast(180%)" in await viewer.get_by_alt_text("photo-pied.png").evaluate(
        "img => img.style.filter"
    )
    await photo.get_by_role("button", name="Signature").click()
    await (
        exp.get_by_role("dialog")
        .get_by_role("slider", name="Position de la signature")
        .press("ArrowLeft")
    )
    await exp.get_by_role("dialog").get_by_role("button", name="Signer").click()
    await exp.get_by_text("Signature apposée").wait_for()
    await exp.get_by_text("v2").first.wait_for()

    # The report PDF, generated from the signed form, filed in the dossier.
    await exp.get_by_role("button", name="Générer le compte-rendu PDF").click()
    await exp.get_by_text("Compte-rendu généré et ajouté au dossier.").wait_for()
    await exp.locator(".viewer-pane").last.wait_for()
    await shot(exp, "dossier-documents")

    await req.reload()
    await req.get_by_text(re.compile("lu par Dr Karim Benali", re.I)).first.wait_for()
    await req.get_by_role("button", name="Clôturer le dossier").click()
    await req.get_by_text("Dossier clôturé").first.wait_for()
    assert not pages.errors, pages.errors
