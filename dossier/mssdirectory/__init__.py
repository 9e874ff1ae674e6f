"""The MSSanté directory: the Annuaire Santé's public extract of MSSanté addresses, imported
from the command line and searched by the send dialog."""
