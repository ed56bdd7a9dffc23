"""Security primitives that are not the shared-key encodings: the RFC 9497 OPRF used by the keyless mode."""
