"""Options shared by several commands, defined once."""

from __future__ import annotations

import argparse
import sys

from matchkit.settings import KEY_ENV_VAR


def add_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key", metavar="KEYFILE", default=None,
        help=f"shared key file (mode 0600); default: the file named by ${KEY_ENV_VAR}. "
        "The secret itself is never accepted on the command line.",
    )


def progress_bar(description: str, unit: str = "rows", **options):  # type: ignore[no-untyped-def]
    """A tqdm bar on an interactive terminal, else None (CI logs and pipes stay clean); ``options`` go to tqdm."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(**{"desc": description, "unit": unit, "unit_scale": True, "file": sys.stderr, "leave": False,
                   **options})
