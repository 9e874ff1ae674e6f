"""Form templates as data and the validation of a part's values."""

from __future__ import annotations

import pytest

from core.errors import ValidationFailed
from dossier.seed import TLX_DIABETO, TX_SIMPLE
from dossier.workflow.forms import check_template, clean_values

FIELDS = TLX_DIABETO["requester"]


def test_demo_templates_are_well_formed():
    assert check_template(TX_SIMPLE) and check_template(TLX_DIABETO)
    with pytest.raises(ValueError):
        check_template({"requester": [{"name": "x", "label": "X", "type": "blob"}], "expert": []})


def test_draft_checks_types_but_not_required_fields():
    assert clean_values(FIELDS, {"hba1c": 8.2}, complete=False) == {"hba1c": 8.2}
    for bad in (
        {"hba1c": "huit"},
        {"hba1c": 42},
        {"date_hba1c": "02/10/2026"},
        {"motif": "Pas dans la liste"},
        {"nope": 1},
        {"hba1c": True},
    ):
        with pytest.raises(ValidationFailed) as e:
            clean_values(FIELDS, bad, complete=False)
        assert e.value.code == "invalid_form"


def test_signing_requires_every_required_field_and_lists_them_all():
    with pytest.raises(ValidationFailed) as e:
        clean_values(FIELDS, {"hba1c": 8.2}, complete=True)
    assert e.value.code == "form_incomplete"
    missing = {f["field"] for f in e.value.extra["fields"]}
    assert missing == {"motif", "type_diabete", "traitement", "question"}
