"""Known-answer vectors that freeze the linkage-field encodings of mk1 (matchkit.encode.fields): exact tokens,
keyed Bloom filters (unsalted and salted), blocking tokens, and one whole FEBRL row through LinkTableEncoder.

NEVER edit an expected value: two agencies hash their files months apart with whatever matchkit each has, and
their tokens must still meet. A change to any of these outputs is a new encoding version, not a fix.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from matchkit.encode.fields import BloomEncoder, blocking_tokens, exact_tokens
from matchkit.encode.fields_table import LinkTableEncoder
from matchkit.encode.person import Encoder
from matchkit.io.readers import Chunk
from matchkit.schema import load_schema
from matchkit.security.keys import SharedKey

KAT_KEY = SharedKey("mk-kat", bytes(range(32)))
PURPOSE = "febrl-linkage"


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(KAT_KEY, PURPOSE, "mk1")


def set_bits(packed: np.ndarray) -> list[int]:
    return np.flatnonzero(np.unpackbits(packed, bitorder="little")).tolist()


def test_fingerprint_kat():
    assert KAT_KEY.fingerprint == "ed3a:aa99:296f:44fc:cf32:d494:037a:9e99"


def test_field_subkey_is_hkdf_of_the_field_name(encoder):
    """Sub-keys: HKDF-SHA256(secret, salt "matchkit/mk1", info "<purpose>/field:<name>:<encoding>")."""
    expected = HKDF(hashes.SHA256(), 32, b"matchkit/mk1", b"febrl-linkage/field:surname:exact").derive(
        KAT_KEY.secret)
    assert encoder.subkey("field:surname:exact") == expected
    token = hmac.new(expected, b"smith", hashlib.sha256).digest()[:16]
    assert exact_tokens(encoder.subkey("field:surname:exact"), ["smith"]) == [token]


@pytest.mark.parametrize(("field", "canonical", "expected"), [
    ("given_name", "catherine", "d2f8f7850f869a8073281ad4d7c5c3bf"),
    ("surname", "smith", "b07a79cf2720f7c6840b96648d937d29"),
    ("surname", "张伟", "1485f3d9bb690d4c0e05b8daaa080e1d"),
    ("date_of_birth", "19560416", "cb5956a09edc7622a195ef829af3c203"),
    ("postcode", "02000", "395b40b851295363c0143b545ce33774"),
    ("soc_sec_id", "AB123456", "2876a22b1d3fa9ffd31b0c1c7e070d19"),
    ("address_1", "12 wattle street", "3f984bf24591da402400c7fbea23d831"),
])
def test_exact_token_kat(encoder, field, canonical, expected):
    assert exact_tokens(encoder.subkey(f"field:{field}:exact"), [canonical])[0].hex() == expected


def test_bloom_filter_positions_kat(encoder):
    bloom = BloomEncoder(encoder.subkey("field:given_name:bloom"), "name", 512, 16)
    unsalted, salted = bloom.encode(["jo", "jo"], [None, "1956"])
    assert set_bits(unsalted) == [
        0, 23, 36, 48, 71, 80, 84, 86, 97, 98, 156, 163, 179, 190, 193, 213, 227, 237, 240, 243, 248, 251, 268, 280,
        287, 294, 308, 313, 315, 332, 333, 336, 352, 378, 383, 397, 403, 412, 414, 447, 475, 480, 486, 496, 499, 511,
    ]
    assert set_bits(salted) == [
        2, 9, 11, 30, 31, 37, 41, 73, 85, 87, 91, 92, 95, 99, 115, 118, 137, 139, 140, 167, 180, 190, 194, 208, 234,
        241, 278, 314, 323, 345, 347, 357, 359, 366, 382, 390, 392, 407, 413, 424, 439, 445, 456, 463, 469, 499,
    ]


def test_bloom_filter_hex_kat(encoder):
    bloom = BloomEncoder(encoder.subkey("field:given_name:bloom"), "name", 512, 16)
    unsalted, salted = bloom.encode(["catherine", "catherine"], [None, "19560416"])
    assert unsalted.tobytes().hex() == (
        "48818422845880460080ab00411980800ce40a049052370000013894280a1000"
        "100412408a089189244200008880073125240a410245851acdb11c0ca6142070")
    assert salted.tobytes().hex() == (
        "658040d96c02c0863a10240d41003006041801406180c5a0420825683146d645"
        "24503481cc0100000081803208054108a0004c0932416602601c415940404940")
    date = BloomEncoder(encoder.subkey("field:date_of_birth:bloom"), "date", 256, 8).encode(["19560416"])
    assert date[0].tobytes().hex() == "1215bf029be23061602a61b20a71311c810857e87cf2a3a0e7b941c71569d601"


def test_blocking_token_kat(encoder):
    key = encoder.subkey("blocking")
    assert blocking_tokens(key, "surname_postcode", [["S530"], ["02000"]]).tolist() == [5883305776047776473]
    assert blocking_tokens(key, "ssid", [["AB123456"]]).tolist() == [5315434875523038711]
    digest = hmac.new(key, b"ssid\x1fAB123456", hashlib.sha256).digest()[:8]
    assert int.from_bytes(digest, "big", signed=True) == 5315434875523038711


FEBRL_ROW = {"rec_id": "rec-1-org", "given_name": "Catherine", "surname": "Smith", "street_number": "12",
             "address_1": "Wattle Street", "address_2": "", "suburb": "Kingston", "postcode": "02000",
             "state": "NSW", "date_of_birth": "1956-04-16", "soc_sec_id": "AB-123 456"}
FEBRL_ROW_KAT = {
    "_line": 2,
    "rec_id": "rec-1-org",
    "given_name_tok": "d2f8f7850f869a8073281ad4d7c5c3bf",
    "given_name_bf": "658040d96c02c0863a10240d41003006041801406180c5a0420825683146d645"
                     "24503481cc0100000081803208054108a0004c0932416602601c415940404940",
    "surname_tok": "b07a79cf2720f7c6840b96648d937d29",
    "surname_bf": "8007a8540052090004400100009808500040a2000400029120038006000480058"
                  "110204509020888a80040080420248014100400000c04100a002080080214b3",
    "street_number_tok": "d25b5c75d869c5166222c150bb4d1b20",
    "street_number_bf": "80002002800082604008000a4300c20003142400401024402418040100001009",
    "address_1_tok": "3eaa9ba81f3c53448c0bb0161c2381fc",
    "address_1_bf": "04b4a5605c082832844d5220176011a600081a16241490b04000652010e00b02e"
                    "c003408800d0000094466361f27000840070585a43501001c87606002a9b813",
    "address_2_tok": None,
    "address_2_bf": None,
    "suburb_tok": "04cd3c5f8862d99d3cb88814420eeea5",
    "suburb_bf": "d488858a045a36ca0d5b3c95f0492f00b10288c040951a26382600880c082900",
    "postcode_tok": "395b40b851295363c0143b545ce33774",
    "postcode_bf": "6009c008280088894c0a15b204110203161a006c44630b88095010c528091013",
    "state_tok": "8e70ff839c96f1f9f0ead4b44dff1d8a",
    "date_of_birth_tok": "cb5956a09edc7622a195ef829af3c203",
    "date_of_birth_bf": "1215bf029be23061602a61b20a71311c810857e87cf2a3a0e7b941c71569d601",
    "soc_sec_id_tok": "2876a22b1d3fa9ffd31b0c1c7e070d19",
    "soc_sec_id_bf": "9039317c2e63005c82800e84a38865ecc19602581364f394ba1c4022bfb994b2",
    # blocking keys: one per pass of the shipped schema (a new pass adds a key; the encoding of a pass's key
    # from its name and parts is frozen by the blocking-token vectors above)
    "_blk_ssid": 5315434875523038711,
    "_blk_dob_given": 6171112483070945910,
    "_blk_dob_surname": -4411874435853711720,
    "_blk_dob_postcode": 3596480192282711212,
    "_blk_names_state": -1702817448098561986,
    "_blk_surname_postcode": 5883305776047776473,
    "_blk_given_postcode": 8139104642884847402,
    "_blk_street_address": 7013523405346548036,
}


def test_febrl_row_kat(encoder):
    """One raw FEBRL row, normalised and encoded per the built-in febrl schema (names salted with the date of
    birth): every output cell is frozen."""
    table_encoder = LinkTableEncoder(load_schema("febrl"), encoder)
    chunk = Chunk({name: np.array([value], dtype=object) for name, value in FEBRL_ROW.items()}, np.array([2]))
    table, faults = table_encoder.encode(chunk)
    assert faults == []
    row = {name: value.hex() if isinstance(value, bytes) else value for name, value in table.to_pylist()[0].items()}
    assert row == FEBRL_ROW_KAT
