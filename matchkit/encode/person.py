"""Encoding ``mk1``: exact keyed tokens, ID near tokens and birth-date-salted fuzzy name tokens.

Once released an encoding version never changes its output: ``tests/test_encode_kat.py`` freezes every function
here with known-answer vectors. A change that alters any byte is a new version (``mk2``), never an edit of ``mk1``.

Cost model (this machine: one HMAC-SHA256 from Python costs ~0.5 µs with the key's pad states precomputed, see
``matchkit.encode.keyed``): exact tokens are HMAC-SHA256 over the canonical value, computed once per *distinct*
value (the caller factorises columns). The many small tokens that the fuzzy encodings need are a keyed pseudo-random function built on AES-256 applied to fixed 16-byte blocks, which
``cryptography`` encrypts in one vectorised call per batch (ECB mode on independent blocks = one PRF call each).
Both primitives are keyed with sub-keys derived per kind of value and purpose (see ``matchkit.security.keys``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from matchkit.encode.codes import factorize
from matchkit.encode.keyed import KeyedHmac, encrypt_blocks
from matchkit.security.keys import SharedKey

ENCODING_VERSION = "mk1"
SUPPORTED_ENCODINGS = frozenset({ENCODING_VERSION})
TOKEN_BYTES = 16
PINYIN_CACHE_LIMIT = 1_000_000  # distinct pinyin tuples remembered per encoder (~200 bytes each)

# Windows over the 17-digit ID body (inclusive positions), overlapping by one: every single substitution and every
# swap of two adjacent digits lies inside one window, so the two bodies agree on the other three... at least on the
# body with that window removed.
NEAR_WINDOWS: tuple[tuple[int, int], ...] = ((0, 4), (4, 8), (8, 12), (12, 16))

_NEAR_TAG = b"MKN1"
_NAME_TAG = b"MKF1"
_POW10_17 = 10 ** np.arange(16, -1, -1, dtype=np.int64)  # place values of the 17 body digits


class Encoder:
    """All keyed encodings of one (key, purpose, encoding version). Thread-compatible, not thread-safe."""

    def __init__(self, key: SharedKey, purpose: str, encoding_version: str = ENCODING_VERSION) -> None:
        if encoding_version not in SUPPORTED_ENCODINGS:
            raise ValueError(f"unsupported encoding version {encoding_version!r}")
        self.purpose = purpose
        self.encoding_version = encoding_version
        self.key_id = key.key_id
        self.key_fingerprint = key.fingerprint
        self._key = key
        derive = self.subkey
        self._person_id = KeyedHmac(derive("person_id"))
        self._birth_date = KeyedHmac(derive("birth_date"))
        self._name_variant = KeyedHmac(derive("name_variant"))
        self._text = KeyedHmac(derive("text"))
        self._near_cipher = Cipher(algorithms.AES(derive("person_id_near")), modes.ECB())
        self._name_cipher = Cipher(algorithms.AES(derive("name_salted")), modes.ECB())
        self._variant_cache: dict[str, bytes] = {}
        self._pinyin_cache: dict[tuple[str, ...], bytes] = {}
        self._dob_cache: dict[int, bytes] = {}

    def subkey(self, kind: str) -> bytes:
        """The 256-bit sub-key of one kind of value under this encoder's purpose and encoding version."""
        return self._key.derive(self.purpose, kind, self.encoding_version)

    # --- exact tokens -------------------------------------------------------------------------------------------
    def id_token(self, canonical: str) -> bytes:
        """Exact 128-bit token of a canonical ID message (``RID:<18 chars>`` or ``<type>:<value>``)."""
        return self._person_id.digest(canonical.encode("utf-8"))[:TOKEN_BYTES]

    def id_tokens(self, canonicals: Sequence[str | None]) -> list[bytes | None]:
        """Exact tokens for many canonical IDs, one HMAC per distinct value (taxpayers and dependants repeat)."""
        codes, uniques = factorize(canonicals)
        tokens = np.empty(len(uniques) + 1, dtype=object)
        tokens[:-1] = self._person_id.digests((c.encode("utf-8") for c in uniques), TOKEN_BYTES)
        tokens[-1] = None  # code -1: no canonical value
        return tokens[codes].tolist()

    def id_token_array(self, canonicals: pa.Array) -> pa.FixedSizeBinaryArray:
        """``id_tokens`` as an Arrow ``binary(16)`` column: a string array of canonical IDs (null = no value) in,
        one HMAC per distinct value, tokens gathered by code without a Python object per row."""
        encoded = pc.dictionary_encode(canonicals)
        indices = encoded.indices
        distinct = encoded.dictionary.to_pylist()
        return _gather_tokens(self._person_id.digests((c.encode("utf-8") for c in distinct), TOKEN_BYTES),
                              indices.fill_null(0).to_numpy(), indices)

    def dob_token_array(self, salts: np.ndarray) -> pa.FixedSizeBinaryArray:
        """``dob_token`` of each YYYYMMDD in ``salts`` as an Arrow ``binary(16)`` column, null where 0."""
        salts = np.asarray(salts, dtype=np.int64)
        distinct, codes = np.unique(salts, return_inverse=True)
        tokens = [self.dob_token(int(value)) if value else bytes(TOKEN_BYTES) for value in distinct.tolist()]
        present = salts != 0
        return _gather_tokens(tokens, codes.reshape(-1), pa.array(present, type=pa.bool_()) if not present.all()
                              else None)

    def text_token(self, value: str) -> bytes:
        """Exact token for a generic identifying text field of a user schema."""
        return self._text.digest(value.encode("utf-8"))[:TOKEN_BYTES]

    def dob_token(self, yyyymmdd: int) -> bytes:
        """Exact 128-bit token of a birth date given as the integer YYYYMMDD (memoised: dates repeat)."""
        token = self._dob_cache.get(yyyymmdd)
        if token is None:
            token = self._birth_date.digest(f"{yyyymmdd:08d}".encode("ascii"))[:TOKEN_BYTES]
            self._dob_cache[yyyymmdd] = token
        return token

    # --- ID near tokens -----------------------------------------------------------------------------------------
    def id_near_tokens(self, bodies: Sequence[str]) -> np.ndarray:
        """Near tokens for 17-digit ID bodies: an ``(n, 4)`` int64 array, one column per window.

        Token *w* is ``AES_k(tag | w | 000 | remaining 12 digits as a big-endian uint64)``, first 8 bytes, read as
        a signed big-endian int64. Bodies must be 17 ASCII digits (the caller selects them).
        """
        return self.id_near_tokens_ascii("".join(bodies).encode("ascii"))

    def id_near_tokens_ascii(self, joined_bodies: bytes) -> np.ndarray:
        """``id_near_tokens`` of bodies given concatenated as ASCII bytes (17 per body)."""
        count = len(joined_bodies) // 17
        if count == 0:
            return np.zeros((0, len(NEAR_WINDOWS)), dtype=np.int64)
        if len(joined_bodies) != count * 17:
            raise ValueError("ID bodies must be 17 ASCII digits")
        digits = np.frombuffer(joined_bodies, dtype=np.uint8).reshape(count, 17) - ord("0")
        if digits.max(initial=0) > 9:
            raise ValueError("ID bodies must be 17 ASCII digits")
        body_values = digits.astype(np.int64) @ _POW10_17
        blocks = np.zeros((count, len(NEAR_WINDOWS), 16), dtype=np.uint8)
        blocks[:, :, 0:4] = np.frombuffer(_NEAR_TAG, dtype=np.uint8)
        for window_index, (first, last) in enumerate(NEAR_WINDOWS):
            # digits before the window, shifted left over the digits after it, plus the digits after it
            tail_power = 10 ** (16 - last)
            remaining = (body_values // 10 ** (17 - first)) * tail_power + body_values % tail_power
            blocks[:, window_index, 4] = window_index
            blocks[:, window_index, 8:16] = remaining.astype(">u8").view(np.uint8).reshape(count, 8)
        return self._prf(self._near_cipher, blocks.reshape(-1, 16)).reshape(count, len(NEAR_WINDOWS))

    # --- fuzzy name tokens --------------------------------------------------------------------------------------
    def name_variant_digest(self, variant: str) -> bytes:
        """Keyed 64-bit digest of one name variant, memoised (names and their pinyin repeat across records)."""
        digest = self._variant_cache.get(variant)
        if digest is None:
            digest = self._name_variant.digest(variant.encode("utf-8"))[:8]
            if len(self._variant_cache) > PINYIN_CACHE_LIMIT:
                self._variant_cache.clear()
            self._variant_cache[variant] = digest
        return digest

    def name_digests(self, variants: Sequence[str]) -> bytes:
        """The concatenated 8-byte keyed digests of one name's variants (the caller memoises per name)."""
        return b"".join(self.name_variant_digest(variant) for variant in variants)

    def name_digests_of(self, normalised_name: str, pinyin: tuple[str, ...]) -> bytes:
        """``name_digests(name_variants(normalised_name, pinyin))``, faster: the pinyin variants' digests are
        remembered per pinyin tuple (homophones and repeated names share them), and the exact-name variant, which
        the caller memoises per name, is digested without filling the per-variant cache."""
        mac = self._name_variant
        tail = self._pinyin_cache.get(pinyin)
        if tail is None:
            if len(self._pinyin_cache) > PINYIN_CACHE_LIMIT:
                self._pinyin_cache.clear()
            variants = name_variants("", pinyin)[1:]  # the pinyin variants (the exact-name one comes below)
            cache = self._variant_cache
            if len(cache) > PINYIN_CACHE_LIMIT:
                cache.clear()
            parts = []
            for variant in variants:
                digest = cache.get(variant)
                if digest is None:
                    digest = cache[variant] = mac.digest(variant.encode("utf-8"))[:8]
                parts.append(digest)
            tail = self._pinyin_cache[pinyin] = b"".join(parts)
        return mac.digest(("N:" + normalised_name).encode("utf-8"))[:8] + tail

    def name_fuzzy_arrays(self, digest_rows: Sequence[bytes], salts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised fuzzy name tokens: ``(tokens, counts)`` where record *i* owns ``counts[i]`` consecutive tokens.

        ``digest_rows[i]`` is record *i*'s ``name_digests`` (``b""`` when it has no name); ``salts[i]`` its birth
        date as YYYYMMDD, or 0 when unknown. Token = ``AES_k(digest(variant) | salt as uint32 | tag)``, first 8
        bytes as a signed big-endian int64: equal tokens imply an equal variant *and* an equal birth date, so a
        token's frequency says little about the name behind it.
        """
        counts = np.fromiter((len(row) // 8 for row in digest_rows), dtype=np.int64, count=len(digest_rows))
        total = int(counts.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64), counts
        blocks = np.zeros((total, 16), dtype=np.uint8)
        blocks[:, 0:8] = np.frombuffer(b"".join(digest_rows), dtype=np.uint8).reshape(total, 8)
        salt_per_token = np.repeat(np.asarray(salts, dtype=np.int64), counts)
        blocks[:, 8:12] = salt_per_token.astype(">u4").view(np.uint8).reshape(total, 4)
        blocks[:, 12:16] = np.frombuffer(_NAME_TAG, dtype=np.uint8)
        return self._prf(self._name_cipher, blocks), counts

    def name_fuzzy_tokens(self, variant_lists: Sequence[Sequence[str] | None], salts: Sequence[int]) -> list[
        list[int] | None
    ]:
        """Fuzzy name tokens as Python lists (None where a record has no name); see ``name_fuzzy_arrays``."""
        rows = [self.name_digests(v) if v else b"" for v in variant_lists]
        tokens, counts = self.name_fuzzy_arrays(rows, np.asarray(salts, dtype=np.int64))
        values = tokens.tolist()
        out: list[list[int] | None] = []
        position = 0
        for count in counts.tolist():
            out.append(values[position : position + count] if count else None)
            position += count
        return out

    def name_fuzzy_by_code(self, distinct_rows: Sequence[bytes], codes: np.ndarray,
                           salts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``name_fuzzy_arrays`` for rows given as codes into their distinct ``name_digests`` (``b""`` = no name):
        the same ``(tokens, counts)``, with no Python object per row."""
        unique_counts = np.fromiter((len(row) // 8 for row in distinct_rows), dtype=np.int64,
                                    count=len(distinct_rows))
        codes = np.asarray(codes, dtype=np.int64)
        counts = unique_counts[codes] if len(distinct_rows) else np.zeros(len(codes), dtype=np.int64)
        total = int(counts.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64), counts
        digests = np.frombuffer(b"".join(distinct_rows), dtype=np.uint8).reshape(-1, 8)
        unique_starts = np.zeros(len(distinct_rows), dtype=np.int64)
        np.cumsum(unique_counts[:-1], out=unique_starts[1:])
        row_starts = np.zeros(len(codes), dtype=np.int64)
        np.cumsum(counts[:-1], out=row_starts[1:])
        # token j of the run belongs to row r: its digest is the distinct row's (j - row start)-th
        token_index = np.repeat(unique_starts[codes] - row_starts, counts) + np.arange(total, dtype=np.int64)
        blocks = np.zeros((total, 16), dtype=np.uint8)
        blocks[:, 0:8] = digests[token_index]
        salt_per_token = np.repeat(np.asarray(salts, dtype=np.int64), counts)
        blocks[:, 8:12] = salt_per_token.astype(">u4").view(np.uint8).reshape(total, 4)
        blocks[:, 12:16] = np.frombuffer(_NAME_TAG, dtype=np.uint8)
        return self._prf(self._name_cipher, blocks), counts

    @staticmethod
    def _prf(cipher: Cipher, blocks: np.ndarray) -> np.ndarray:
        return encrypt_blocks(cipher, blocks)[:, :8].copy().view(">i8").ravel().astype(np.int64)


def _gather_tokens(distinct_tokens: Sequence[bytes], codes: np.ndarray,
                   validity: pa.Array | None) -> pa.FixedSizeBinaryArray:
    """A ``binary(16)`` column whose row *i* is ``distinct_tokens[codes[i]]``, null where ``validity`` is null or
    false (``validity`` is an array whose validity bitmap, or boolean values, say which rows have a token)."""
    size = len(codes)
    if len(distinct_tokens):
        table = np.frombuffer(b"".join(distinct_tokens), dtype=np.uint8).reshape(-1, TOKEN_BYTES)
        data = table[codes]
    else:
        data = np.zeros((size, TOKEN_BYTES), dtype=np.uint8)
    valid_buffer = None
    null_count = 0
    if validity is not None:
        mask = validity.is_valid() if not pa.types.is_boolean(validity.type) else validity.fill_null(False)
        null_count = size - int(pc.sum(mask.cast(pa.int64())).as_py() or 0)
        if null_count:
            valid_buffer = mask.buffers()[1] if mask.offset == 0 else pa.array(mask.to_numpy(
                zero_copy_only=False)).buffers()[1]
    if null_count:
        data = data.copy()
        data[~np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)] = 0  # null slots hold zeros
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(TOKEN_BYTES), size,
                                               [valid_buffer, pa.py_buffer(np.ascontiguousarray(data))],
                                               null_count=null_count)


def name_variants(normalised_name: str, pinyin: Sequence[str]) -> list[str]:
    """The ordered variants a name is encoded as: exact name, full pinyin, full pinyin minus each syllable.

    Deletion variants share the pinyin namespace, so a name with a dropped or added character has its full pinyin
    among the other's deletions, and a name with one different character shares a deletion with it.
    """
    variants = ["N:" + normalised_name, "P:" + " ".join(pinyin)]
    if len(pinyin) >= 2:
        for index in range(len(pinyin)):
            variants.append("P:" + " ".join([*pinyin[:index], *pinyin[index + 1 :]]))
    return variants


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
