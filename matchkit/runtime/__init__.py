"""The start-up of a command's process and its worker processes (never changed by a library call)."""
