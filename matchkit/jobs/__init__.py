"""The jobs a user runs (hash, verify, link, dedupe, the keyless seal/request/answer/open), as library calls:
orchestration only; the CLI is a thin layer on top."""
