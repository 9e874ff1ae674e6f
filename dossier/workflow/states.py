"""The dossier's life: which state may follow which, and why a transition is refused.

    draft ──requester signs──▶ awaiting_expertise ──expert signs──▶ expertised ──close──▶ closed
      │                              │                                  │
      └─────── ask closure ──────────┴────────── ask closure ──────────┘
                                     ▼
                             closure_requested ──other side (or admin) closes──▶ closed
                                     └──withdraw / refuse──▶ the state it came from

A requester may also abandon their own draft (draft → closed).
"""

from __future__ import annotations

from core.errors import Conflict
from dossier.models import DossierState

S = DossierState

TRANSITIONS: dict[DossierState, frozenset[DossierState]] = {
    S.draft: frozenset({S.awaiting_expertise, S.closure_requested, S.closed}),
    S.awaiting_expertise: frozenset({S.expertised, S.closure_requested}),
    S.expertised: frozenset({S.closure_requested, S.closed}),
    S.closure_requested: frozenset({S.draft, S.awaiting_expertise, S.expertised, S.closed}),
    S.closed: frozenset(),
}

# States in which the requester may still change the request (consent, recipients, type, form).
REQUESTER_EDITABLE = frozenset({S.draft})
# States in which the expert may write their part.
EXPERT_EDITABLE = frozenset({S.awaiting_expertise})


def can_transition(src: DossierState, dst: DossierState) -> bool:
    return dst in TRANSITIONS[src]


def check_transition(src: DossierState, dst: DossierState) -> None:
    """Raise a 409 ``illegal_transition`` unless ``src → dst`` is allowed."""
    if not can_transition(src, dst):
        raise Conflict(
            f"A dossier in state '{src.value}' ({src.label}) cannot go to "
            f"'{dst.value}' ({dst.label})",
            code="illegal_transition",
            state=src.value,
            target=dst.value,
            allowed=sorted(s.value for s in TRANSITIONS[src]),
        )


def require_state(current: DossierState, allowed: frozenset[DossierState], what: str) -> None:
    """Raise a 409 ``illegal_state`` when an edit is attempted in the wrong state."""
    if current not in allowed:
        raise Conflict(
            f"{what} is not possible while the dossier is '{current.value}' ({current.label})",
            code="illegal_state",
            state=current.value,
        )
