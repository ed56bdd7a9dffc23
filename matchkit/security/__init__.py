"""Secrets and what they vouch for: shared keys, agency signing keys, the audit log, and the RFC 9497 OPRF used by
the keyless mode."""
