"""Launches: the per-launch server-side state (pending authorizations, tokens, context) and its services."""
