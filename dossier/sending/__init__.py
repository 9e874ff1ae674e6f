"""Sending a PDF out of Consilium: MSSanté, or the vault (link by e-mail, code by SMS) and
its download page."""
