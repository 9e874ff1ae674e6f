"""The report ("compte-rendu"): the PDF built from the signed forms, its PAdES signature and
its verification."""
