"""Consilium core: configuration, persistence, accounts, audit, notifications, HTTP glue.

`core` imports none of the other Consilium packages; they all build on it.
"""
