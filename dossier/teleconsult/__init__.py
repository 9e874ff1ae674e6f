"""Téléconsultations planned on a dossier (seed 001): planning, invitations with the room's
link, .ics for professionals, reminders, rescheduling and cancellation, the dossier's rooms."""
