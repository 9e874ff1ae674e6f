"""The dossier's life: creation wizard, request types and forms, states, numbers, closure,
activity view and history."""
