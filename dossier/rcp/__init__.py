"""RCP (réunion de concertation pluridisciplinaire): e-Staff meetings with an agenda of
dossiers, moved through live, and a signed « fiche RCP » filed into each dossier discussed."""
