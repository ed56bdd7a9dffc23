"""Secrets and what they vouch for: shared keys, agency signing keys, the audit log."""
