"""Patients: identities, INS checks, matching ("Taux de corresp.") and the lookup of a
dossier by its number."""
