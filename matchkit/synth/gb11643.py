"""GB 11643 resident ID numbers for the generator: check characters, construction, legacy 15-digit form, typos.

Deliberately independent of ``matchkit.normalize``: the generator is the ground-truth oracle the normaliser is tested
against, so it must not share its code.
"""

from __future__ import annotations

import numpy as np

WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
CHECK_CHARS = "10X98765432"
_CHECK_BYTES = np.frombuffer(CHECK_CHARS.encode("ascii"), dtype=np.uint8)


def check_char(body17: str) -> str:
    """ISO 7064 MOD 11-2 check character of a 17-digit body."""
    total = sum(int(digit) * int(weight) for digit, weight in zip(body17, WEIGHTS))
    return CHECK_CHARS[total % 11]


def is_valid_id18(value: str) -> bool:
    """18 characters, 17 digits plus a correct check character (the date and region are not looked at)."""
    return (len(value) == 18 and value[:17].isdigit() and value[:17].isascii()
            and check_char(value[:17]) == value[17])


def make_ids(county: np.ndarray, birth_yyyymmdd: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Vectorised 18-character IDs from county code (6 digits), birth date as YYYYMMDD and sequence (3 digits)."""
    n = len(county)
    body = np.empty((n, 17), dtype=np.int64)
    for pos, (value, width) in enumerate(((county, 6), (birth_yyyymmdd, 8), (seq, 3))):
        start = (0, 6, 14)[pos]
        rest = np.asarray(value, dtype=np.int64).copy()
        for k in range(width - 1, -1, -1):
            body[:, start + k] = rest % 10
            rest //= 10
    check_index = (body @ WEIGHTS) % 11
    raw = np.empty((n, 18), dtype=np.uint8)
    raw[:, :17] = body + ord("0")
    raw[:, 17] = _CHECK_BYTES[check_index]
    return raw.view("S18").ravel().astype("U18")


def to_legacy15(id18: str) -> str:
    """The 15-digit first-generation form of a person born 1900-1999: drop the century '19' and the check."""
    return id18[:6] + id18[8:17]


def with_digit_typo(id18: str, position: int, new_digit: str, *, recompute_check: bool) -> str:
    body = id18[:position] + new_digit + id18[position + 1:17]
    return body + (check_char(body) if recompute_check else id18[17])


def with_adjacent_swap(id18: str, position: int, *, recompute_check: bool) -> str:
    chars = list(id18[:17])
    chars[position], chars[position + 1] = chars[position + 1], chars[position]
    body = "".join(chars)
    return body + (check_char(body) if recompute_check else id18[17])


def excel_damaged(id18: str) -> str:
    """What Excel shows after it has turned an ID into a number: ``1.10105E+17``."""
    return f"{float(id18[:17] + ('0' if id18[17] == 'X' else id18[17])):.5E}"
