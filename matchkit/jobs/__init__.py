"""The jobs a user runs (hash, verify, link), as library calls: orchestration only; the CLI is a thin layer on top."""
