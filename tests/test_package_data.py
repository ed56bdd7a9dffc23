"""The data files ship inside the package (importlib.resources), MATCHKIT_CONFIG_DIR replaces the whole set, and
`matchkit schema list|show|check` lets a user find and copy the built-in schemas."""

from __future__ import annotations

import shutil
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from matchkit.cli.main import main
from matchkit.errors import SchemaError
from matchkit.resources import packaged_schema_names, policy_file, schema_file
from matchkit.schema import BUILTIN_LINK_SCHEMAS, BUILTIN_SOURCES, load_schema
from matchkit.verify.policy import load_policy
from tests.conftest import REPO

PACKAGED = Path(str(resources.files("matchkit").joinpath("data")))


def test_every_builtin_schema_ships_in_the_package() -> None:
    assert packaged_schema_names() == sorted(BUILTIN_SOURCES + BUILTIN_LINK_SCHEMAS)
    for name in BUILTIN_SOURCES + BUILTIN_LINK_SCHEMAS:
        schema = load_schema(name)
        assert Path(str(schema.path)) == PACKAGED / "schemas" / f"{name}.toml"
        assert schema.name == name
    assert load_policy().path == str(PACKAGED / "policy.toml")


def test_no_configs_folder_left_outside_the_package() -> None:
    assert not (REPO / "configs").exists()


def test_package_data_globs_cover_every_data_file() -> None:
    """pyproject's package-data must name every data file, or a wheel ships without it."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["matchkit"]
    shipped = {p for pattern in patterns for p in (REPO / "matchkit").glob(pattern)}
    on_disk = {p for p in PACKAGED.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert on_disk and on_disk <= shipped


def test_config_dir_replaces_the_whole_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "schemas").mkdir()
    text = (PACKAGED / "schemas" / "education.toml").read_text(encoding="utf-8")
    (tmp_path / "schemas" / "education.toml").write_text(text.replace("version = 1", "version = 7", 1),
                                                         encoding="utf-8")
    shutil.copy(PACKAGED / "policy.toml", tmp_path / "policy.toml")
    monkeypatch.setenv("MATCHKIT_CONFIG_DIR", str(tmp_path))
    assert str(schema_file("education")) == str(tmp_path / "schemas" / "education.toml")
    assert str(policy_file()) == str(tmp_path / "policy.toml")
    assert load_schema("education").version == 7
    # a file missing from the override folder is an error naming it, never the packaged copy in its place
    with pytest.raises(SchemaError) as info:
        load_schema("claims")
    assert str(tmp_path / "schemas" / "claims.toml") in str(info.value)
    assert main(["schema", "list"]) == 1  # lists what is there, names what is not
    out = capsys.readouterr().out
    assert f"education          source  {tmp_path / 'schemas' / 'education.toml'}" in out
    assert f"{tmp_path / 'schemas' / 'claims.toml'}  (unusable: schema file not found)" in out


def test_config_dir_without_policy_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATCHKIT_CONFIG_DIR", str(tmp_path))
    with pytest.raises(SchemaError) as info:
        load_policy()
    assert str(tmp_path / "policy.toml") in str(info.value) and "not found" in str(info.value)


def test_schema_show_prints_the_file_byte_for_byte(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["schema", "show", "febrl"]) == 0
    assert capsysbinary.readouterr().out == (PACKAGED / "schemas" / "febrl.toml").read_bytes()


def test_schema_show_is_a_usable_template(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["schema", "show", "education"]) == 0
    mine = tmp_path / "mine.toml"
    mine.write_bytes(capsysbinary.readouterr().out)
    assert load_schema(mine).digest == load_schema("education").digest
    assert main(["schema", "check", str(mine)]) == 0
    assert "valid source schema 'education'" in capsysbinary.readouterr().out.decode()


def test_schema_list_names_every_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "list"]) == 0
    out = capsys.readouterr().out
    for name in BUILTIN_SOURCES + BUILTIN_LINK_SCHEMAS:
        assert f"{name} " in out
    assert str(PACKAGED / "schemas" / "febrl.toml") in out


def test_schema_show_unknown_and_check_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "show", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown built-in schema 'nope'" in err and "febrl" in err
    bad = tmp_path / "bad.toml"
    bad.write_text('[source]\nname = "x"\n', encoding="utf-8")
    assert main(["schema", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "source.purpose" in err and "Traceback" not in err
