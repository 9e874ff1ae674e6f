"""Form templates as data and the validation of a form part's values.

A template is ``{"requester": [field, ...], "expert": [field, ...]}``; a field is
``{"name", "label", "type", "required", "options", "help", "max_length"}`` with ``type`` one of
text, textarea, date, number, select, checkbox. Drafts are checked for types only (a draft
may be incomplete); signing also checks the required fields.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from core.errors import ValidationFailed

FIELD_TYPES = frozenset({"text", "textarea", "date", "number", "select", "checkbox"})
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
MAX_TEXT = 20_000


def check_template(template: dict[str, Any]) -> dict[str, Any]:
    """Refuse a malformed template (used when request types are defined)."""
    for side in ("requester", "expert"):
        fields = template.get(side)
        if not isinstance(fields, list) or not fields:
            raise ValueError(f"template needs a non-empty '{side}' list")
        seen: set[str] = set()
        for f in fields:
            name = f.get("name", "")
            if not _NAME.match(name) or name in seen:
                raise ValueError(f"bad or repeated field name {name!r}")
            seen.add(name)
            if f.get("type") not in FIELD_TYPES:
                raise ValueError(f"field {name}: unknown type {f.get('type')!r}")
            if f["type"] == "select" and not f.get("options"):
                raise ValueError(f"field {name}: a select needs options")
            if not f.get("label"):
                raise ValueError(f"field {name}: a label is needed")
    return template


def _is_empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _check_value(f: dict[str, Any], v: Any) -> Any:
    t = f["type"]
    if v is None:
        return None
    if t in ("text", "textarea"):
        if not isinstance(v, str):
            raise TypeError("a text is expected")
        if len(v) > int(f.get("max_length") or MAX_TEXT):
            raise TypeError("too long")
        return v
    if t == "number":
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError("a number is expected")
        if ("min" in f and v < f["min"]) or ("max" in f and v > f["max"]):
            raise TypeError(f"out of range [{f.get('min')}, {f.get('max')}]")
        return v
    if t == "date":
        if not isinstance(v, str):
            raise TypeError("a date YYYY-MM-DD is expected")
        try:
            date.fromisoformat(v)
        except ValueError:
            raise TypeError("a date YYYY-MM-DD is expected") from None
        return v
    if t == "select":
        if v not in f.get("options", []):
            raise TypeError(f"one of {f.get('options')} is expected")
        return v
    if t == "checkbox":
        if not isinstance(v, bool):
            raise TypeError("true or false is expected")
        return v
    raise TypeError("unknown field type")


def clean_values(
    fields: list[dict[str, Any]], values: dict[str, Any], *, complete: bool
) -> dict[str, Any]:
    """Check values against a side's fields; ``complete`` also requires the required ones.

    Raises 422 ``invalid_form`` listing every faulty field at once.
    """
    by_name = {f["name"]: f for f in fields}
    errors: list[dict[str, str]] = []
    out: dict[str, Any] = {}
    for name, v in values.items():
        f = by_name.get(name)
        if f is None:
            errors.append({"field": name, "msg": "unknown field"})
            continue
        try:
            out[name] = _check_value(f, v)
        except TypeError as e:
            errors.append({"field": name, "msg": str(e)})
    if complete:
        for f in fields:
            v = out.get(f["name"])
            if f.get("required") and (_is_empty(v) or (f["type"] == "checkbox" and v is not True)):
                errors.append({"field": f["name"], "msg": f"« {f['label']} » est obligatoire"})
    if errors:
        raise ValidationFailed(
            "Some fields of the form are not valid",
            code="invalid_form" if not complete else "form_incomplete",
            fields=errors,
        )
    return out
