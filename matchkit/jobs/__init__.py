"""Jobs: what a user runs, as library calls over files (the CLI is thin over them)."""
