"""RFC 9497 Appendix A.1.1 (OPRF mode, ristretto255-SHA512) and RFC 9380 expand_message_xmd known answers."""

from __future__ import annotations

import pytest

from matchkit.security import oprf

SEED = bytes.fromhex("a3" * 32)
KEY_INFO = bytes.fromhex("74657374206b6579")  # "test key"
SK_SM = "5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e"
BLIND = bytes.fromhex("64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706")
VECTORS = [
    (
        "00",
        "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
        "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
        ("527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3"
        "ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6"),
    ),
    (
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
        "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
        ("f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4"
        "f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73"),
    ),
]


def test_expand_message_xmd_sha512_rfc9380() -> None:
    dst = b"QUUX-V01-CS02-with-expander-SHA512-256"
    assert oprf.expand_message_xmd(b"abcdef0123456789", dst, 32).hex() == (
        "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58")
    assert oprf.expand_message_xmd(b"abc", dst, 0x80).hex() == (
        "7f1dddd13c08b543f2e2037b14cefb255b44c83cc397c1786d975653e36a6b11bdd7732d8b38adb4a0edc26a0cef4bb4"
        "5217135456e58fbca1703cd6032cb1347ee720b87972d63fbf232587043ed2901bce7f22610c0419751c065922b488"
        "431851041310ad659e4b23520e1772ab29dcdeb2002222a363f0c2b1c972b3efe1")


def test_derive_key_pair() -> None:
    secret, public = oprf.derive_key_pair(SEED, KEY_INFO)
    assert secret.hex() == SK_SM
    assert oprf.is_valid_element(public)


@pytest.mark.parametrize(("input_hex", "blinded_hex", "evaluated_hex", "output_hex"), VECTORS)
def test_rfc9497_vectors(input_hex: str, blinded_hex: str, evaluated_hex: str, output_hex: str) -> None:
    secret, _ = oprf.derive_key_pair(SEED, KEY_INFO)
    data = bytes.fromhex(input_hex)
    blind, blinded = oprf.blind(data, BLIND)
    assert blinded.hex() == blinded_hex
    evaluated = oprf.blind_evaluate(secret, blinded)
    assert evaluated.hex() == evaluated_hex
    assert oprf.finalize(data, blind, evaluated).hex() == output_hex
    assert oprf.evaluate(secret, data).hex() == output_hex


def test_random_blinds_give_the_same_output_and_unrelated_elements() -> None:
    secret, _ = oprf.derive_key_pair(SEED, b"other")
    data = b"some token"
    b1, e1 = oprf.blind(data)
    b2, e2 = oprf.blind(data)
    assert e1 != e2
    out1 = oprf.finalize(data, b1, oprf.blind_evaluate(secret, e1))
    out2 = oprf.finalize(data, b2, oprf.blind_evaluate(secret, e2))
    assert out1 == out2 == oprf.evaluate(secret, data)


def test_invalid_elements_are_refused() -> None:
    assert not oprf.is_valid_element(bytes(32))  # identity
    assert not oprf.is_valid_element(b"\xff" * 32)  # not canonical
    assert not oprf.is_valid_element(b"\x01" * 31)
    with pytest.raises(oprf.OprfError):
        oprf.finalize(b"x", BLIND, b"\xff" * 32)


def test_batches_match_single_calls() -> None:
    secret, _ = oprf.derive_key_pair(SEED, KEY_INFO)
    inputs = [bytes([i]) * 3 for i in range(20)]
    assert oprf.evaluate_many(secret, inputs, workers=1) == [oprf.evaluate(secret, x) for x in inputs]
    pairs = oprf.blind_many(inputs, workers=1)
    evaluated = oprf.blind_evaluate_many(secret, [e for _, e in pairs], workers=1)
    assert None not in evaluated
    outputs = oprf.finalize_many(inputs, [b for b, _ in pairs], [e for e in evaluated if e], workers=1)
    assert oprf.blind_evaluate_many(secret, [b"\xff" * 32], workers=1) == [None]
    assert outputs == [oprf.evaluate(secret, x) for x in inputs]


def test_finalize_with_the_inverse_blind_equals_finalize() -> None:
    secret, _ = oprf.derive_key_pair(SEED, KEY_INFO)
    for input_hex, _, evaluated_hex, output_hex in VECTORS:
        inverse = oprf.unblind_scalar(BLIND)
        out = oprf.finalize_unblinded(bytes.fromhex(input_hex), inverse, bytes.fromhex(evaluated_hex))
        assert out.hex() == output_hex
    inputs = [b"a", b"b", b"c"]
    pairs = oprf.blind_many_inverse(inputs, workers=1)
    evaluated = [oprf.blind_evaluate(secret, e) for _, e in pairs]
    assert oprf.finalize_unblinded_many(inputs, [b for b, _ in pairs], evaluated, workers=1) == [
        oprf.evaluate(secret, x) for x in inputs]
