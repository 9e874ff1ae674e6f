"""The care-offer directory ("offres de soin"): search by keyword, specialty, establishment
and distance."""
