"""Hashed files: what they hold (format), how they are written (writer) and read back (reader)."""
