"""The fixed-key HMAC and the batched AES-ECB PRF under every encoding (matchkit.encode.keyed): byte-for-byte equal
to the standard library's HMAC and to plain ``cryptography`` encryption, whatever the key and message."""

from __future__ import annotations

import hmac

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import example, given
from hypothesis import strategies as st

from matchkit.encode.keyed import KeyedHmac, encrypt_blocks

# RFC 4231 test case 2 (HMAC-SHA-256): key "Jefe", data "what do ya want for nothing?"
RFC4231_KEY = b"Jefe"
RFC4231_DATA = b"what do ya want for nothing?"
RFC4231_MAC = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_rfc4231_vector():
    assert KeyedHmac(RFC4231_KEY).digest(RFC4231_DATA).hex() == RFC4231_MAC


def test_rfc4231_key_longer_than_a_block():
    # RFC 4231 test case 6: a 131-byte key is hashed first
    key = bytes([0xAA]) * 131
    data = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert KeyedHmac(key).digest(data).hex() == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


@given(key=st.binary(min_size=0, max_size=200), messages=st.lists(st.binary(max_size=300), max_size=20))
@example(key=bytes(64), messages=[b""])
@example(key=bytes(65), messages=[bytes(55), bytes(56), bytes(64)])
def test_equals_stdlib_hmac(key, messages):
    mac = KeyedHmac(key)
    expected = [hmac.digest(key, m, "sha256") for m in messages]
    assert [mac.digest(m) for m in messages] == expected
    assert mac.digests(messages) == expected
    assert mac.digests(iter(messages), 16) == [e[:16] for e in expected]
    ints = mac.int64s(messages)
    assert ints.dtype == np.int64
    assert ints.tolist() == [int.from_bytes(e[:8], "big", signed=True) for e in expected]


def test_state_is_not_consumed_between_calls():
    mac = KeyedHmac(b"k" * 32)
    first = mac.digest(b"a")
    mac.digest(b"something else")
    assert mac.digest(b"a") == first


def test_repr_hides_the_key():
    key = b"secret-key-material-0123456789ab"
    assert "secret" not in repr(KeyedHmac(key)) and key.hex() not in repr(KeyedHmac(key))


def test_int64s_of_nothing():
    out = KeyedHmac(b"k").int64s([])
    assert out.dtype == np.int64 and out.shape == (0,)


@given(key=st.binary(min_size=32, max_size=32), count=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_encrypt_blocks_equals_plain_ecb(key, count, seed):
    blocks = np.random.default_rng(seed).integers(0, 256, (count, 16), dtype=np.uint8)
    cipher = Cipher(algorithms.AES(key), modes.ECB())
    encryptor = cipher.encryptor()
    expected = encryptor.update(blocks.tobytes()) + encryptor.finalize()
    out = encrypt_blocks(cipher, blocks)
    assert out.shape == (count, 16) and out.dtype == np.uint8
    assert out.tobytes() == expected


def test_encrypt_blocks_accepts_3d_blocks_and_refuses_ragged_input():
    cipher = Cipher(algorithms.AES(bytes(32)), modes.ECB())
    blocks = np.arange(2 * 3 * 16, dtype=np.uint8).reshape(2, 3, 16)
    assert encrypt_blocks(cipher, blocks).tobytes() == encrypt_blocks(cipher, blocks.reshape(6, 16)).tobytes()
    with pytest.raises(ValueError, match="16 bytes"):
        encrypt_blocks(cipher, np.zeros(15, dtype=np.uint8))
