"""Thin command-line layer: each command parses its options and calls one library function."""
