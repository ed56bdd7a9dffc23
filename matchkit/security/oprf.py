"""RFC 9497 OPRF, mode 0x00 (OPRF), suite ristretto255-SHA512, over libsodium's ristretto255 (``rbcl``).

Everything follows the RFC's notation: ``expand_message_xmd`` (RFC 9380 §5.3.1, SHA-512) from ``hashlib``;
``HashToGroup`` = ristretto255 one-way map of 64 uniform bytes (``crypto_core_ristretto255_from_hash``);
``HashToScalar`` = 64 uniform bytes reduced mod the group order; ``DeriveKeyPair(seed, info)``; ``Blind``,
``BlindEvaluate``, ``Finalize`` and the server's direct ``Evaluate``. Scalars and elements are 32-byte little-endian
encodings as in RFC 9496. The module is checked against the RFC's Appendix A.1.1 vectors
(``tests/test_keyless_oprf.py``).

Why ``rbcl``: it ships wheels with its own libsodium (nothing from the system package manager), exposes exactly the
ristretto255 calls the RFC needs (from_hash, scalarmult, scalar reduce/invert/random, is_valid_point) and is
maintained (1.1.2, 2025). PyNaCl exposes only Ed25519/X25519 point operations (no ristretto255 one-way map, so
``HashToGroup`` would need a hand-written Elligator); the ``oprf`` package (5.0.0, 2023) wraps an older draft API
without the RFC 9497 context strings. Elements received from another party are checked with
``crypto_core_ristretto255_is_valid_point`` (canonical encoding, not the identity) before use.

Batch helpers (``*_many``) spread large batches over processes (:func:`parallel_map`); a group operation is
~50 µs, so the per-item Python overhead (~1-2 µs) is small against the floor.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

import rbcl

MODE_OPRF = 0x00
SUITE_ID = b"ristretto255-SHA512"
CONTEXT_STRING = b"OPRFV1-" + bytes([MODE_OPRF]) + b"-" + SUITE_ID
ELEMENT_BYTES = 32
SCALAR_BYTES = 32
OUTPUT_BYTES = 64
_HASH_TO_GROUP_DST = b"HashToGroup-" + CONTEXT_STRING
_HASH_TO_SCALAR_DST = b"HashToScalar-" + CONTEXT_STRING
_DERIVE_KEY_PAIR_DST = b"DeriveKeyPair" + CONTEXT_STRING
_IDENTITY = bytes(ELEMENT_BYTES)
_SHA512_BLOCK = 128


class OprfError(ValueError):
    """An input the RFC says to reject: a malformed element, an input hashing to the identity, a zero scalar."""


def i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 §5.3.1 with SHA-512 (b_in_bytes 64, s_in_bytes 128)."""
    if len(dst) > 255:
        raise OprfError("DST longer than 255 bytes")
    ell = -(-len_in_bytes // 64)
    if ell > 255 or len_in_bytes > 65535:
        raise OprfError("expand_message_xmd: requested length too large")
    dst_prime = dst + i2osp(len(dst), 1)
    b0 = hashlib.sha512(bytes(_SHA512_BLOCK) + msg + i2osp(len_in_bytes, 2) + b"\x00" + dst_prime).digest()
    b_i = hashlib.sha512(b0 + b"\x01" + dst_prime).digest()
    out = [b_i]
    for i in range(2, ell + 1):
        b_i = hashlib.sha512(bytes(a ^ b for a, b in zip(b0, b_i)) + i2osp(i, 1) + dst_prime).digest()
        out.append(b_i)
    return b"".join(out)[:len_in_bytes]


def hash_to_group(msg: bytes, dst: bytes = _HASH_TO_GROUP_DST) -> bytes:
    """``HashToGroup``: the ristretto255 element of ``msg`` (RFC 9380 hash_to_ristretto255 via one-way map)."""
    if dst is _HASH_TO_GROUP_DST:  # the common case, inlined (64 bytes: ell = 1)
        dst_prime = _H2G_DST_PRIME
        b0 = hashlib.sha512(_ZPAD + msg + b"\x00\x40\x00" + dst_prime).digest()
        uniform = hashlib.sha512(b0 + b"\x01" + dst_prime).digest()
    else:
        uniform = expand_message_xmd(msg, dst, 64)
    return rbcl.crypto_core_ristretto255_from_hash(uniform)


_H2G_DST_PRIME = _HASH_TO_GROUP_DST + i2osp(len(_HASH_TO_GROUP_DST), 1)
_ZPAD = bytes(_SHA512_BLOCK)


def hash_to_scalar(msg: bytes, dst: bytes = _HASH_TO_SCALAR_DST) -> bytes:
    """``HashToScalar``: 64 uniform bytes reduced modulo the group order."""
    return rbcl.crypto_core_ristretto255_scalar_reduce(expand_message_xmd(msg, dst, 64))


def derive_key_pair(seed: bytes, info: bytes) -> tuple[bytes, bytes]:
    """RFC 9497 §3.2.1 ``DeriveKeyPair(seed, info)`` -> ``(skS, pkS)``."""
    if len(seed) != 32:
        raise OprfError("DeriveKeyPair needs a 32-byte seed")
    derive_input = seed + i2osp(len(info), 2) + info
    for counter in range(256):
        secret = hash_to_scalar(derive_input + i2osp(counter, 1), _DERIVE_KEY_PAIR_DST)
        if secret != bytes(SCALAR_BYTES):
            return secret, rbcl.crypto_scalarmult_ristretto255_base(secret)
    raise OprfError("DeriveKeyPairError")  # pragma: no cover - probability 2^-(256*252)


def random_scalar() -> bytes:
    """A uniformly random non-zero scalar (libsodium's CSPRNG)."""
    return rbcl.crypto_core_ristretto255_scalar_random()


def is_valid_element(element: bytes) -> bool:
    """A canonical ristretto255 encoding of an element other than the identity (RFC 9497 §4.1 DeserializeElement)."""
    return (len(element) == ELEMENT_BYTES and element != _IDENTITY
            and bool(rbcl.crypto_core_ristretto255_is_valid_point(element)))


def blind(input_: bytes, blind_scalar: bytes | None = None) -> tuple[bytes, bytes]:
    """``Blind(input)`` -> ``(blind, blindedElement)``; ``blind_scalar`` only for known-answer tests."""
    element = hash_to_group(input_)
    if element == _IDENTITY:
        raise OprfError("InvalidInputError")  # pragma: no cover - needs a SHA-512 preimage
    scalar = random_scalar() if blind_scalar is None else blind_scalar
    return scalar, rbcl.crypto_scalarmult_ristretto255(scalar, element)


def blind_evaluate(secret: bytes, blinded_element: bytes) -> bytes:
    """``BlindEvaluate(skS, blindedElement)``; the element must already be checked with :func:`is_valid_element`."""
    return rbcl.crypto_scalarmult_ristretto255(secret, blinded_element)


def finalize(input_: bytes, blind_scalar: bytes, evaluated_element: bytes) -> bytes:
    """``Finalize(input, blind, evaluatedElement)`` -> 64-byte output."""
    if not is_valid_element(evaluated_element):
        raise OprfError("the answer holds an element that is not a valid ristretto255 encoding")
    inverse = rbcl.crypto_core_ristretto255_scalar_invert(blind_scalar)
    unblinded = rbcl.crypto_scalarmult_ristretto255(inverse, evaluated_element)
    return _finalize_hash(input_, unblinded)


def unblind_scalar(blind_scalar: bytes) -> bytes:
    """``1 / blind``: what :func:`finalize_unblinded` needs (computed once per request, not once per answer)."""
    return rbcl.crypto_core_ristretto255_scalar_invert(blind_scalar)


def finalize_unblinded(input_: bytes, inverse_blind: bytes, evaluated_element: bytes) -> bytes:
    """``Finalize`` with the blind's inverse already computed: equal to :func:`finalize`."""
    if not is_valid_element(evaluated_element):
        raise OprfError("the answer holds an element that is not a valid ristretto255 encoding")
    return _finalize_hash(input_, rbcl.crypto_scalarmult_ristretto255(inverse_blind, evaluated_element))


def evaluate(secret: bytes, input_: bytes) -> bytes:
    """The server's direct ``Evaluate(skS, input)``: equal to the client's ``Finalize`` of the blind flow."""
    element = hash_to_group(input_)
    return _finalize_hash(input_, rbcl.crypto_scalarmult_ristretto255(secret, element))


def _finalize_hash(input_: bytes, unblinded: bytes) -> bytes:
    return hashlib.sha512(i2osp(len(input_), 2) + input_ + i2osp(len(unblinded), 2) + unblinded
                          + b"Finalize").digest()


# --- batches --------------------------------------------------------------------------------------------------------
T = TypeVar("T")
R = TypeVar("R")
PARALLEL_MIN_ITEMS = 4096  # below this a process pool costs more than it saves
_CHUNK_ITEMS = 8192


def parallel_map(function: Callable[[list[T]], list[R]], items: Sequence[T], workers: int | None = None) -> list[R]:
    """``function`` over consecutive chunks of ``items`` on every core, results in order. ``function`` must be a
    module-level function (it runs in worker processes); small batches run in this process."""
    from matchkit.runtime.workers import default_workers

    count = len(items)
    workers = default_workers() if workers is None else workers
    if workers <= 1 or count < PARALLEL_MIN_ITEMS:
        return function(list(items))
    size = max(1, min(_CHUNK_ITEMS, -(-count // (4 * workers))))
    chunks = [list(items[i:i + size]) for i in range(0, count, size)]
    out: list[R] = []
    pool = _pool(workers)
    try:
        for part in pool.map(function, chunks):
            out.extend(part)
    except BaseException:
        _POOLS.pop(workers, None)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return out


def _pool(workers: int) -> ProcessPoolExecutor:
    from matchkit.runtime.workers import ignore_interrupts, pool_context

    pool = _POOLS.get(workers)
    if pool is None:  # one pool per process and size, reused by every batch (a pool start costs ~0.1-1 s)
        pool = _POOLS[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(),
                                                     initializer=ignore_interrupts)
    return pool


def parallel_imap(function: Callable[[T], R], tasks: Iterable[T], workers: int | None = None,
                  window: int | None = None) -> Iterator[R]:
    """``function`` over ``tasks`` on every core, results in order, with at most ``window`` tasks in flight
    (default 3 per worker): the caller consumes results while the workers compute the next ones, and only the
    tasks in flight are held pickled in memory. With one worker everything runs in this process."""
    from collections import deque

    from matchkit.runtime.workers import default_workers

    workers = default_workers() if workers is None else workers
    if workers <= 1:
        for task in tasks:
            yield function(task)
        return
    pool = _pool(workers)
    limit = window or 3 * workers
    pending: deque[Future[R]] = deque()
    try:
        for task in tasks:
            pending.append(pool.submit(function, task))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BaseException:
        for future in pending:
            future.cancel()
        if not isinstance(sys.exc_info()[1], GeneratorExit):
            _POOLS.pop(workers, None)
            pool.shutdown(wait=False, cancel_futures=True)
        raise


_POOLS: dict[int, ProcessPoolExecutor] = {}


@atexit.register
def _shutdown_pools() -> None:
    for pool in _POOLS.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _POOLS.clear()


def _evaluate_chunk(args: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [evaluate(secret, data) for secret, data in args]


def evaluate_many(secret: bytes, inputs: Sequence[bytes], workers: int | None = None) -> list[bytes]:
    """``Evaluate(skS, x)`` for many inputs, on every core."""
    return parallel_map(_evaluate_chunk, [(secret, x) for x in inputs], workers)


def _blind_chunk(inputs: list[bytes]) -> list[tuple[bytes, bytes]]:
    return [blind(x) for x in inputs]


def blind_many(inputs: Sequence[bytes], workers: int | None = None) -> list[tuple[bytes, bytes]]:
    """Fresh random blinds for many inputs, on every core: ``[(blind, blindedElement)]``."""
    return parallel_map(_blind_chunk, list(inputs), workers)


def _blind_inverse_chunk(inputs: list[bytes]) -> list[tuple[bytes, bytes]]:
    out = []
    for x in inputs:
        scalar, element = blind(x)
        out.append((unblind_scalar(scalar), element))
    return out


def blind_many_inverse(inputs: Sequence[bytes], workers: int | None = None) -> list[tuple[bytes, bytes]]:
    """Like :func:`blind_many` but returns ``(1 / blind, blindedElement)``: the client keeps only the inverse."""
    return parallel_map(_blind_inverse_chunk, list(inputs), workers)


def _finalize_unblinded_chunk(args: list[tuple[bytes, bytes, bytes]]) -> list[bytes]:
    return [finalize_unblinded(x, b, e) for x, b, e in args]


def finalize_unblinded_many(inputs: Sequence[bytes], inverse_blinds: Sequence[bytes], evaluated: Sequence[bytes],
                            workers: int | None = None) -> list[bytes]:
    """:func:`finalize_unblinded` over many elements, on every core."""
    return parallel_map(_finalize_unblinded_chunk, list(zip(inputs, inverse_blinds, evaluated)), workers)


def _blind_evaluate_chunk(args: list[tuple[bytes, bytes]]) -> list[bytes | None]:
    return [blind_evaluate(secret, element) if is_valid_element(element) else None for secret, element in args]


def blind_evaluate_many(secret: bytes, elements: Sequence[bytes], workers: int | None = None) -> list[bytes | None]:
    """``BlindEvaluate`` over many elements, on every core; None for an element that is not a valid encoding (the
    caller refuses the whole request then)."""
    return parallel_map(_blind_evaluate_chunk, [(secret, e) for e in elements], workers)


def _finalize_chunk(args: list[tuple[bytes, bytes, bytes]]) -> list[bytes]:
    return [finalize(x, b, e) for x, b, e in args]


def finalize_many(inputs: Sequence[bytes], blinds: Sequence[bytes], evaluated: Sequence[bytes],
                  workers: int | None = None) -> list[bytes]:
    """``Finalize`` over many (input, blind, evaluatedElement), on every core."""
    return parallel_map(_finalize_chunk, list(zip(inputs, blinds, evaluated)), workers)


def _valid_chunk(elements: list[bytes]) -> list[bool]:
    return [is_valid_element(e) for e in elements]


def valid_many(elements: Sequence[bytes], workers: int | None = None) -> list[bool]:
    return parallel_map(_valid_chunk, list(elements), workers)


def cpu_count() -> int:
    return os.cpu_count() or 1
