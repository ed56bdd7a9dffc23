from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from matchkit.errors import KeyFileError
from matchkit.security.keys import SharedKey, load_key, new_key, parse_key, write_key
from matchkit.settings import KEY_ENV_VAR


def test_new_key_is_256_bit_and_written_owner_only(tmp_path):
    key = new_key()
    assert len(key.secret) == 32
    path = write_key(key, tmp_path / "k.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key(path)
    assert loaded.secret == key.secret and loaded.key_id == key.key_id
    assert new_key().secret != key.secret


def test_write_refuses_to_overwrite(tmp_path):
    path = write_key(new_key(), tmp_path / "k.json")
    with pytest.raises(KeyFileError, match="overwrite"):
        write_key(new_key(), path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_group_or_world_readable_key_refused(tmp_path, mode):
    path = write_key(new_key(), tmp_path / "k.json")
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="readable by group or others"):
        load_key(path)


def test_short_secret_refused(tmp_path):
    body = {"format": "matchkit-key", "version": 1, "key_id": "mk-x", "secret": base64.b64encode(b"s" * 16).decode()}
    with pytest.raises(KeyFileError, match="too short"):
        parse_key(json.dumps(body).encode())


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"format": "other"}', b"\xff\xfe",
                                 b'{"format": "matchkit-key", "version": 1, "key_id": "k", "secret": "***"}',
                                 b'{"format": "matchkit-key", "version": 9, "key_id": "k", "secret": ""}'])
def test_malformed_key_files_refused_without_echoing_content(raw):
    with pytest.raises(KeyFileError) as info:
        parse_key(raw, "k.json")
    assert "***" not in str(info.value)


def test_missing_key_file_and_env_var(tmp_path, monkeypatch):
    with pytest.raises(KeyFileError, match="not found"):
        load_key(tmp_path / "nope.json")
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    with pytest.raises(KeyFileError, match=KEY_ENV_VAR):
        load_key(None)
    path = write_key(new_key(), tmp_path / "k.json")
    monkeypatch.setenv(KEY_ENV_VAR, str(path))
    assert load_key(None).key_id == load_key(path).key_id


def test_repr_and_fingerprint_never_show_secret():
    key = SharedKey("mk-test", bytes(range(32)))
    assert bytes(range(32)).hex() not in repr(key)
    assert base64.b64encode(bytes(range(32))).decode() not in repr(key) + key.fingerprint
    assert key.fingerprint == SharedKey("other-id", bytes(range(32))).fingerprint
    assert key.fingerprint != SharedKey("mk-test", bytes(range(1, 33))).fingerprint


def test_derivation_separates_kinds_and_purposes():
    key = SharedKey("mk-test", bytes(range(32)))
    a = key.derive("iit-special-deduction", "person_id", "mk1")
    assert a == key.derive("iit-special-deduction", "person_id", "mk1")
    assert a != key.derive("iit-special-deduction", "name_variant", "mk1")
    assert a != key.derive("other-purpose", "person_id", "mk1")
    assert a != key.derive("iit-special-deduction", "person_id", "mk2")
