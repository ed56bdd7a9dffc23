"""Known-answer vectors that freeze encoding mk1. NEVER edit an expected value: a change is a new version."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from matchkit.encode.person import NEAR_WINDOWS, Encoder, name_variants
from matchkit.security.keys import SharedKey

KAT_KEY = SharedKey("mk-kat", bytes(range(32)))
PURPOSE = "iit-special-deduction"


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(KAT_KEY, PURPOSE, "mk1")


def test_fingerprint_kat():
    assert KAT_KEY.fingerprint == "ed3a:aa99:296f:44fc:cf32:d494:037a:9e99"


def test_exact_token_kat(encoder):
    assert encoder.id_token("RID:11010519491231002X").hex() == "c363f4c4a5aa5f22de758aa92e5dc335"
    assert encoder.id_token("passport:E12345678").hex() == "5dabc4659297c68ab901dc913395b0f5"
    assert encoder.dob_token(19491231).hex() == "c84c6b55837f158d857a0faf45ebd311"
    assert encoder.text_token("abc").hex() == "93a01d7ade0d224bdd85507d6bf5a6a7"


def test_near_token_kat(encoder):
    assert encoder.id_near_tokens(["11010519491231002"]).tolist() == [
        [-1443426312362169316, 4537836164609247760, 713766508860642658, -8986318841836597719]
    ]


def test_name_token_kat(encoder):
    variants = name_variants("张三丰", ("zhang", "san", "feng"))
    assert variants == ["N:张三丰", "P:zhang san feng", "P:san feng", "P:zhang feng", "P:zhang san"]
    assert encoder.name_fuzzy_tokens([variants], [19491231]) == [
        [1969404493534682603, 7021398213626057220, -1772634681723934210, 4292633492811854638, 8678767945009573849]
    ]


def _subkey(kind: str) -> bytes:
    return HKDF(hashes.SHA256(), 32, b"matchkit/mk1", f"{PURPOSE}/{kind}".encode()).derive(KAT_KEY.secret)


def test_exact_token_matches_reference_construction(encoder):
    expected = hmac.new(_subkey("person_id"), b"RID:11010519491231002X", hashlib.sha256).digest()[:16]
    assert encoder.id_token("RID:11010519491231002X") == expected


def test_near_token_matches_reference_construction(encoder):
    body = "11010519491231002"
    cipher = Cipher(algorithms.AES(_subkey("person_id_near")), modes.ECB()).encryptor()
    expected = []
    for index, (first, last) in enumerate(NEAR_WINDOWS):
        remaining = int(body[:first] + body[last + 1 :])
        block = b"MKN1" + bytes([index, 0, 0, 0]) + remaining.to_bytes(8, "big")
        expected.append(int.from_bytes(cipher.update(block)[:8], "big", signed=True))
    assert encoder.id_near_tokens([body]).tolist() == [expected]


def test_kinds_never_collide(encoder):
    assert encoder.id_token("RID:11010519491231002X") != encoder.text_token("RID:11010519491231002X")
    other = Encoder(KAT_KEY, "another-purpose", "mk1")
    assert other.id_token("RID:11010519491231002X") != encoder.id_token("RID:11010519491231002X")


def _near_share(encoder: Encoder, a: str, b: str) -> int:
    ta, tb = encoder.id_near_tokens([a, b]).tolist()
    return sum(x == y for x, y in zip(ta, tb))


bodies = st.text(alphabet="0123456789", min_size=17, max_size=17)


@given(bodies, st.integers(0, 16), st.integers(1, 9))
def test_one_wrong_digit_shares_a_near_token(body, position, delta):
    encoder = Encoder(KAT_KEY, PURPOSE)
    changed = body[:position] + str((int(body[position]) + delta) % 10) + body[position + 1 :]
    assert 1 <= _near_share(encoder, body, changed) <= 2


@given(bodies, st.integers(0, 15))
def test_adjacent_swap_shares_a_near_token(body, position):
    encoder = Encoder(KAT_KEY, PURPOSE)
    swapped = body[:position] + body[position + 1] + body[position] + body[position + 2 :]
    assert _near_share(encoder, body, swapped) >= 1
    assert _near_share(encoder, body, body) == 4


@given(st.lists(bodies, min_size=1, max_size=20))
def test_near_tokens_deterministic_and_batch_independent(batch):
    encoder = Encoder(KAT_KEY, PURPOSE)
    together = encoder.id_near_tokens(batch)
    alone = np.vstack([encoder.id_near_tokens([b]) for b in batch])
    assert (together == alone).all()


@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=5), st.integers(0, 99991231))
def test_name_tokens_salted_by_birth_date(words, salt):
    encoder = Encoder(KAT_KEY, PURPOSE)
    variants = ["N:" + "".join(words)]
    first, second = encoder.name_fuzzy_tokens([variants, variants], [salt, salt + 1])
    assert first != second
    assert encoder.name_fuzzy_tokens([variants], [salt]) == [first]


KAT_CSV = """学生证件号码,学生姓名,出生日期,教育阶段,入学年月,离校年月
11010519491231002x,張　偉,1949-12-31,义务教育,2021-09,
１１０１０５１９４９１２３１００２Ｘ,张伟,19491231,compulsory,202109,202406
440106200803151235,买买提・艾力,2008/03/15,高中,2023-09,
440106200803151235,曾小明,2008年3月15日,higher,2023-09,
"""


def test_end_to_end_hash_kat(tmp_path):
    """Freezes normalisation, pinyin and variant construction together with the primitives: an extract hashed by
    this release must give these exact tokens in every later release of mk1."""
    from pyarrow import parquet as pq

    from matchkit.jobs.hash import hash_file

    source = tmp_path / "kat.csv"
    source.write_text(KAT_CSV, encoding="utf-8")
    hash_file("education", source, KAT_KEY, tmp_path / "kat.parquet", workers=1)
    rows = pq.read_table(tmp_path / "kat.parquet").to_pylist()
    assert [r["_line"] for r in rows] == [2, 3, 4, 5]
    # spellings of one person (x/X, full-width digits, 張/张 with an ideographic space, three date formats) agree
    assert rows[0]["student_id_tok"] == rows[1]["student_id_tok"]
    assert rows[0]["student_name_fz"] == rows[1]["student_name_fz"]
    assert rows[0]["student_id_tok"].hex() == "c363f4c4a5aa5f22de758aa92e5dc335"
    assert rows[0]["student_dob_tok"].hex() == "c84c6b55837f158d857a0faf45ebd311"
    assert rows[0]["student_id_near"] == [-1443426312362169316, 4537836164609247760, 713766508860642658,
                                          -8986318841836597719]
    assert rows[0]["student_name_fz"] == [3377904574205081296, -8295831871465180026, 2788265231234186411,
                                          5229959504940425665]
    assert rows[2]["student_id_tok"].hex() == "7062938cb7dc05a590052e5f8c46610a"
    assert rows[2]["student_dob_tok"].hex() == "d09177f32f36de5216c5eeb4e88eaee1"
    assert rows[2]["student_name_fz"] == [-7427344257500239065, 6490187387497281089, -810244893666334145,
                                          -810244893666334145, 3364088398823853160, 4458219072842683489,
                                          7644997427918894279]
    assert rows[3]["student_name_fz"] == [-3418997046939283121, -2957764580951922545, -679251673612052818,
                                          -1529447526402562586, -722918849065849042]
