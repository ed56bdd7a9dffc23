"""Fake mk1-shaped tokens for the link tests (no key needed), and checks that the fakes behave like mk1.

Near tokens hash the window-masked 17-digit body with BLAKE2b, name tokens hash the mk1 name variants salted by the
birth date, exact tokens hash the value: the same structure as the keyed encodings, without a key file.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from matchkit.encode.person import NEAR_WINDOWS, name_variants


def _int64(data: str) -> int:
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big", signed=True)


def near_tokens(body: str) -> list[int]:
    assert len(body) == 17 and body.isdigit()
    return [
        _int64(f"near{w}:{body[:first]}{body[last + 1 :]}") for w, (first, last) in enumerate(NEAR_WINDOWS)
    ]


def name_tokens(name: str, pinyin: tuple[str, ...], dob: int) -> list[int]:
    return [_int64(f"name:{variant}|{dob}") for variant in name_variants(name, pinyin)]


def dob_token(dob: int) -> bytes:
    return hashlib.blake2b(f"dob:{dob}".encode(), digest_size=16).digest()


def id_token(body: str, check: str = "0") -> bytes:
    return hashlib.blake2b(f"id:{body}{check}".encode(), digest_size=16).digest()


def record(
    body: str | None, name: str | None, pinyin: tuple[str, ...] = (), dob: int | None = None, check: str = "0"
) -> dict[str, object]:
    """One record's encodings; ``dob`` defaults to the date inside the body (the mk1 salt rule)."""
    if dob is None and body is not None:
        dob = int(body[6:14])
    return {
        "id_tok": id_token(body, check) if body is not None else None,
        "id_near": near_tokens(body) if body is not None else None,
        "name_fz": name_tokens(name, pinyin or tuple(name), dob or 0) if name is not None else None,
        "dob_tok": dob_token(dob) if dob else None,
    }


def frame(records: list[dict[str, object]], index: list[object] | None = None) -> pd.DataFrame:
    return pd.DataFrame(records, index=index)


def typo(body: str, position: int, digit: str | None = None) -> str:
    new = digit if digit is not None else str((int(body[position]) + 1) % 10)
    return body[:position] + new + body[position + 1 :]


def swap(body: str, position: int) -> str:
    return body[:position] + body[position + 1] + body[position] + body[position + 2 :]


def shared_windows(a: str, b: str) -> int:
    return len(set(near_tokens(a)) & set(near_tokens(b)))


def test_single_typo_and_swap_keep_a_near_token() -> None:
    body = "11010519800101123"
    for position in range(17):
        assert shared_windows(body, typo(body, position)) >= 1
    for position in range(16):
        swapped = swap(body, position)
        if swapped != body:
            assert shared_windows(body, swapped) >= 1
    assert shared_windows(body, body) == 4


def test_fake_frame_round_trips() -> None:
    people = frame([record("11010519800101123", "张伟", ("zhang", "wei")), record(None, None)])
    assert len(people["name_fz"].iloc[0]) == 4
    assert people["id_near"].iloc[1] is None
    assert isinstance(people["dob_tok"].iloc[0], bytes)
    assert np.isfinite(len(people))
