from __future__ import annotations

from pathlib import Path

import pytest

from matchkit.normalize.ids import check_char
from matchkit.security.keys import SharedKey, new_key, write_key

REPO = Path(__file__).resolve().parents[1]


def make_id(body17: str) -> str:
    return body17 + check_char(body17)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return write_key(new_key(), tmp_path / "shared.key")


@pytest.fixture
def fixed_key() -> SharedKey:
    return SharedKey("mk-test", bytes(range(32)))


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MATCHKIT_KEY_FILE", raising=False)
    monkeypatch.delenv("MATCHKIT_AUDIT_LOG", raising=False)  # a developer's own log or trust folder must not
    monkeypatch.delenv("MATCHKIT_TRUST_DIR", raising=False)  # leak into the tests
    monkeypatch.delenv("MATCHKIT_CONFIG_DIR", raising=False)  # the packaged data files, as a user gets them


# Timing is not a property: a loaded 2-core CI machine must not fail a test for being slow.
from hypothesis import settings

settings.register_profile("matchkit", deadline=None, print_blob=True)
settings.load_profile("matchkit")
