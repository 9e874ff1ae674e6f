"""Demo data of the dossier: a care-offer directory of Auvergne-Rhône-Alpes, the request
types ``tx_simple`` and ``tlx_diabeto-endocrino``, demo patients and two dossiers (one awaiting
the demo expert, one draft). Idempotent: run it as often as you like."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from core import accounts
from core.accounts import User
from core.db import Database
from core.principal import Principal
from dossier.communes import geocode
from dossier.identity import patients as identity
from dossier.identity.ins import IdentityDocument
from dossier.identity.status import Evidence
from dossier.models import CareOffer, CareOfferMember, Dossier, FormSide, Patient, RequestType
from dossier.workflow import dossiers, forms

TX_SIMPLE: dict[str, Any] = {
    "requester": [
        {"name": "motif", "label": "Motif de la demande", "type": "textarea", "required": True},
        {
            "name": "question",
            "label": "Question posée à l'expert",
            "type": "textarea",
            "required": True,
        },
        {"name": "antecedents", "label": "Antécédents", "type": "textarea", "required": False},
        {
            "name": "traitements",
            "label": "Traitements en cours",
            "type": "textarea",
            "required": False,
        },
        {"name": "allergies", "label": "Allergies connues", "type": "text", "required": False},
    ],
    "expert": [
        {"name": "avis", "label": "Avis du médecin requis", "type": "textarea", "required": True},
        {"name": "conduite", "label": "Conduite à tenir", "type": "textarea", "required": False},
        {
            "name": "suivi",
            "label": "Suivi proposé",
            "type": "select",
            "required": True,
            "options": [
                "Aucun",
                "Revoir dans 1 mois",
                "Revoir dans 3 mois",
                "Téléconsultation à programmer",
                "Consultation spécialisée",
            ],
        },
    ],
}

TLX_DIABETO: dict[str, Any] = {
    "requester": [
        {
            "name": "motif",
            "label": "Motif",
            "type": "select",
            "required": True,
            "options": [
                "Déséquilibre glycémique",
                "Plaie du pied diabétique",
                "Adaptation de l'insulinothérapie",
                "Pathologie thyroïdienne",
                "Autre",
            ],
        },
        {
            "name": "type_diabete",
            "label": "Type de diabète",
            "type": "select",
            "required": True,
            "options": ["Type 1", "Type 2", "Gestationnel", "Autre", "Non diabétique"],
        },
        {
            "name": "hba1c",
            "label": "Dernière HbA1c (%)",
            "type": "number",
            "required": False,
            "min": 3,
            "max": 20,
        },
        {"name": "date_hba1c", "label": "Date de l'HbA1c", "type": "date", "required": False},
        {
            "name": "poids_kg",
            "label": "Poids (kg)",
            "type": "number",
            "required": False,
            "min": 1,
            "max": 400,
        },
        {"name": "traitement", "label": "Traitement actuel", "type": "textarea", "required": True},
        {"name": "question", "label": "Question posée", "type": "textarea", "required": True},
    ],
    "expert": [
        {"name": "avis", "label": "Avis du médecin requis", "type": "textarea", "required": True},
        {
            "name": "adaptation",
            "label": "Adaptation thérapeutique proposée",
            "type": "textarea",
            "required": False,
        },
        {
            "name": "hba1c_cible",
            "label": "HbA1c cible (%)",
            "type": "number",
            "required": False,
            "min": 5,
            "max": 12,
        },
        {
            "name": "consultation",
            "label": "Consultation spécialisée nécessaire",
            "type": "checkbox",
            "required": False,
        },
        {
            "name": "reevaluation",
            "label": "Réévaluation",
            "type": "select",
            "required": True,
            "options": ["1 mois", "3 mois", "6 mois", "Non nécessaire"],
        },
    ],
}

REQUEST_TYPES = (
    ("tx_simple", "Téléexpertise", "", TX_SIMPLE),
    (
        "tlx_diabeto-endocrino",
        "Téléexpertise diabétologie-endocrinologie",
        "Endocrinologie-diabétologie",
        TLX_DIABETO,
    ),
)

# (key, title, first name, last name, RPPS first 10 digits, specialty, establishment)
EXPERTS = (
    ("derm", "Dr", "Hélène", "Garnier", "2000000001", "Dermatologie", "CHU de Saint-Étienne"),
    (
        "cardio",
        "Dr",
        "Thomas",
        "Roux",
        "2000000002",
        "Cardiologie",
        "Hospices Civils de Lyon — Hôpital Louis Pradel",
    ),
    (
        "neuro",
        "Pr",
        "Nadia",
        "Lambert",
        "2000000003",
        "Neurologie",
        "Hospices Civils de Lyon — Hôpital Pierre Wertheimer",
    ),
    ("radio", "Dr", "Julien", "Faure", "2000000004", "Radiologie", "CHU Grenoble Alpes"),
    ("geria", "Dr", "Marie", "Chevalier", "2000000005", "Gériatrie", "CHU de Clermont-Ferrand"),
    (
        "endo_ge",
        "Dr",
        "Paul",
        "Mercier",
        "2000000006",
        "Endocrinologie-diabétologie",
        "CHU Grenoble Alpes",
    ),
    (
        "derm_an",
        "Dr",
        "Camille",
        "Blanc",
        "2000000007",
        "Dermatologie",
        "Centre Hospitalier Annecy Genevois",
    ),
    ("pneumo", "Dr", "Louis", "Girard", "2000000008", "Pneumologie", "CHU de Clermont-Ferrand"),
)

# (name, specialty, establishment, address, postcode, city, member keys)
OFFERS = (
    (
        "Téléexpertise endocrinologie-diabétologie",
        "Endocrinologie-diabétologie",
        "Hospices Civils de Lyon — Hôpital Lyon Sud",
        "165 chemin du Grand Revoyet",
        "69310",
        "Pierre-Bénite",
        ["expert"],
    ),
    (
        "Avis diabétologie — pied diabétique",
        "Endocrinologie-diabétologie",
        "CHU Grenoble Alpes",
        "Boulevard de la Chantourne",
        "38700",
        "La Tronche",
        ["endo_ge"],
    ),
    (
        "Téléexpertise thyroïde",
        "Endocrinologie-diabétologie",
        "Hospices Civils de Lyon — Hôpital Lyon Sud",
        "165 chemin du Grand Revoyet",
        "69310",
        "Pierre-Bénite",
        ["expert"],
    ),
    (
        "Téléexpertise dermatologie — plaies et lésions",
        "Dermatologie",
        "CHU de Saint-Étienne",
        "Avenue Albert Raimond",
        "42270",
        "Saint-Priest-en-Jarez",
        ["derm"],
    ),
    (
        "Dermatologie — suivi des plaies chroniques",
        "Dermatologie",
        "Centre Hospitalier Annecy Genevois",
        "1 avenue de l'Hôpital",
        "74330",
        "Épagny Metz-Tessy",
        ["derm_an"],
    ),
    (
        "Téléexpertise cardiologie — ECG",
        "Cardiologie",
        "Hospices Civils de Lyon — Hôpital Louis Pradel",
        "28 avenue du Doyen Lépine",
        "69500",
        "Bron",
        ["cardio"],
    ),
    (
        "Insuffisance cardiaque — avis",
        "Cardiologie",
        "CHU de Saint-Étienne",
        "Avenue Albert Raimond",
        "42270",
        "Saint-Priest-en-Jarez",
        ["cardio"],
    ),
    (
        "Avis neurovasculaire — AVC aigu",
        "Neurologie",
        "Hospices Civils de Lyon — Hôpital Pierre Wertheimer",
        "59 boulevard Pinel",
        "69500",
        "Bron",
        ["neuro"],
    ),
    (
        "Neurologie — télé-AVC Alpes",
        "Neurologie",
        "CHU Grenoble Alpes",
        "Boulevard de la Chantourne",
        "38700",
        "La Tronche",
        ["neuro"],
    ),
    (
        "Téléradiologie — second avis imagerie",
        "Radiologie",
        "CHU Grenoble Alpes",
        "Boulevard de la Chantourne",
        "38700",
        "La Tronche",
        ["radio"],
    ),
    (
        "Imagerie ostéo-articulaire",
        "Radiologie",
        "CHU de Clermont-Ferrand",
        "58 rue Montalembert",
        "63000",
        "Clermont-Ferrand",
        ["radio"],
    ),
    (
        "Gériatrie — avis pour EHPAD",
        "Gériatrie",
        "CHU de Clermont-Ferrand",
        "58 rue Montalembert",
        "63000",
        "Clermont-Ferrand",
        ["geria"],
    ),
    (
        "Équipe mobile de gériatrie",
        "Gériatrie",
        "Hospices Civils de Lyon — Hôpital Lyon Sud",
        "165 chemin du Grand Revoyet",
        "69310",
        "Pierre-Bénite",
        ["geria"],
    ),
    (
        "Pneumologie — BPCO et oxygénothérapie",
        "Pneumologie",
        "CHU de Clermont-Ferrand",
        "58 rue Montalembert",
        "63000",
        "Clermont-Ferrand",
        ["pneumo"],
    ),
    (
        "Plaies et cicatrisation",
        "Dermatologie",
        "Centre Hospitalier de Valence",
        "179 boulevard Maréchal Juin",
        "26000",
        "Valence",
        ["derm"],
    ),
    (
        "Cardiologie — télésurveillance",
        "Cardiologie",
        "Centre Hospitalier Métropole Savoie",
        "Place Lucien Biset",
        "73000",
        "Chambéry",
        ["cardio"],
    ),
    (
        "Neurologie — épilepsie",
        "Neurologie",
        "CHU de Saint-Étienne",
        "Avenue Albert Raimond",
        "42270",
        "Saint-Priest-en-Jarez",
        ["neuro"],
    ),
    (
        "Endocrinologie — obésité",
        "Endocrinologie-diabétologie",
        "CHU de Clermont-Ferrand",
        "58 rue Montalembert",
        "63000",
        "Clermont-Ferrand",
        ["endo_ge"],
    ),
    (
        "Gériatrie — troubles cognitifs",
        "Gériatrie",
        "Centre Hospitalier Annecy Genevois",
        "1 avenue de l'Hôpital",
        "74330",
        "Épagny Metz-Tessy",
        ["geria"],
    ),
    (
        "Radiologie — scanner et IRM",
        "Radiologie",
        "Hôpital Nord-Ouest Villefranche",
        "Plateau d'Ouilly",
        "69400",
        "Villefranche-sur-Saône",
        ["radio"],
    ),
)

DEMO_PATIENTS: tuple[dict[str, Any], ...] = (
    {
        "birth_name": "SEVESTRE",
        "used_name": "",
        "first_name": "Véronique",
        "first_names": "Véronique Anne",
        "sex": "F",
        "birth_date": date(1986, 2, 7),
        "birth_commune": "Lyon",
        "birth_postcode": "69001",
        "birth_insee_code": "69381",
        "ipp": "DEMO-0001",
        "ins": identity.ins_with_key("2860269381042"),
        "ins_status": "qualified",
    },
    {
        "birth_name": "MARTIN",
        "used_name": "",
        "first_name": "Jean",
        "first_names": "Jean Pierre",
        "sex": "M",
        "birth_date": date(1980, 1, 1),
        "birth_commune": "Paris",
        "birth_postcode": "75001",
        "birth_insee_code": "75101",
        "ipp": "DEMO-0002",
        "ins": None,
        "ins_status": "provisional",
    },
)


def _principal(u: User, delegates: tuple[Any, ...] = ()) -> Principal:
    return Principal.for_user(u, session_id="seed", delegates_for=delegates)


async def seed_demo(db: Database, users: dict[str, User]) -> None:
    async with db.write() as uow:
        s = uow.session
        for code, label, specialty, template in REQUEST_TYPES:
            forms.check_template(template)
            rt = (await s.execute(select(RequestType).where(RequestType.code == code))).scalar()
            if rt is None:
                s.add(RequestType(code=code, label=label, specialty=specialty, template=template))
        people: dict[str, User] = {"expert": users["expert"]}
        for key, title, first, last, rpps10, specialty, estab in EXPERTS:
            email = f"{first.lower()}.{last.lower()}@demo.consilium.fr".replace("é", "e")
            u = await accounts.get_by_email(s, email)
            if u is None:
                u = await accounts.create_user(
                    s,
                    email=email,
                    password=None,
                    role=accounts.Role.practitioner,
                    title=title,
                    first_name=first,
                    last_name=last,
                    rpps=accounts.rpps_with_key(rpps10),
                    profession="Médecin",
                    specialty=specialty,
                    establishment=estab,
                )
            people[key] = u
        existing = set((await s.execute(select(CareOffer.name))).scalars())
        for name, specialty, estab, street, postcode, city, members in OFFERS:
            if name in existing:
                continue
            place = geocode(f"{postcode} {city}")
            offer = CareOffer(
                name=name,
                specialty=specialty,
                establishment=estab,
                address=f"{street}, {postcode} {city}",
                postcode=postcode,
                city=city,
                latitude=place.lat if place else None,
                longitude=place.lon if place else None,
                description=f"{specialty} — {estab}",
            )
            s.add(offer)
            await s.flush()
            for key in members:
                s.add(CareOfferMember(care_offer_id=offer.id, user_id=people[key].id))
    await _demo_dossiers(db, users)


async def _demo_dossiers(db: Database, users: dict[str, User]) -> None:
    requester = _principal(users["requester"])
    async with db.read() as s:
        if (await s.execute(select(Patient.id).where(Patient.ipp == "DEMO-0001"))).first():
            return
        offer_id = (
            await s.execute(
                select(CareOffer.id).where(
                    CareOffer.name == "Téléexpertise endocrinologie-diabétologie"
                )
            )
        ).scalar_one()
    patients = [
        await identity.create_patient(
            db,
            requester,
            dict(p),
            confirm=True,
            # The qualified demo identity: INS from INSi, identity card checked.
            evidence=Evidence(insi=True, document=IdentityDocument.identity_card)
            if p["ins_status"] == "qualified"
            else Evidence(),
            reason="Identité de démonstration",
        )
        for p in DEMO_PATIENTS
    ]
    # Awaiting the demo expert, urgent.
    d1 = await dossiers.create_dossier(db, requester, patient_id=patients[0].id)
    await dossiers.set_consent(
        db,
        requester,
        d1,
        consent=True,
        comment="Patiente informée, consentement oral.",
        urgent=True,
    )
    await dossiers.set_recipients(db, requester, d1, [offer_id])
    await dossiers.set_request_type(db, requester, d1, code="tlx_diabeto-endocrino")
    await dossiers.sign_form(
        db,
        requester,
        d1,
        FormSide.requester,
        {
            "motif": "Déséquilibre glycémique",
            "type_diabete": "Type 2",
            "hba1c": 9.4,
            "traitement": "Metformine 1000 mg x2, gliclazide 60 mg",
            "question": "Faut-il introduire une insuline basale ?",
        },
    )
    # A draft prepared by the secretary on behalf of the requester.
    async with db.read() as s:
        delegates = tuple(await accounts.delegators_of(s, users["secretary"].id))
    secretary = _principal(users["secretary"], delegates)
    d2 = await dossiers.create_dossier(
        db, secretary, patient_id=patients[1].id, requester_id=users["requester"].id
    )
    await dossiers.set_request_type(db, secretary, d2, code="tx_simple")
    async with db.read() as s:
        assert await s.get(Dossier, d2) is not None
