"""Meta-tests (sqlite-utils style): every command has help text and is documented in the README."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from matchkit.cli.main import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def test_all_planned_commands_exist():
    assert {"key", "hash", "verify", "synth"} <= set(_commands())


@pytest.mark.parametrize("name", sorted(_commands()))
def test_command_has_help_and_is_in_readme(name, capsys):
    parser = _commands()[name]
    assert parser.description, f"{name} has no description"
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--help"])
    assert exit_info.value.code == 0
    assert len(capsys.readouterr().out) > 80
    assert f"matchkit {name}" in README, f"'matchkit {name}' is not documented in README.md"


def test_no_command_accepts_a_secret_value():
    """Secrets are never command-line values: no option may be named like one."""
    for name, parser in _commands().items():
        for action in parser._actions:
            for option in action.option_strings:
                assert not any(word in option for word in ("secret", "password", "passphrase")), (name, option)
