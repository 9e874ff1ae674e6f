"""The téléexpertise through the pages (seed 000): the activity view with the seed's columns,
the whole wizard (identity creation, consent, recipients from the directory, request type),
then the requester's and the expert's signatures on the dossier page."""

from __future__ import annotations

import re

import pytest

from core.context import DB
from tests.ui.conftest import open_session, shot

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

    await req.reload()
    await req.get_by_text(re.compile("lu par Dr Karim Benali", re.I)).first.wait_for()
    assert not pages.errors, pages.errors
