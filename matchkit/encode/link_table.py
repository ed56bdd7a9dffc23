"""Turn one chunk of raw rows into one hashed record batch per a *linkage* schema (``kind = "link"``).

Output layout (see docs/DESIGN.md, "Linkage files"):

=================  ==================================  =============================================
column             type                                what
=================  ==================================  =============================================
``_line``          int64                               input line number (rejects and diagnostics)
record id          string                              the owner's own row key, in clear, unique
``<f>_tok``        fixed_size_binary(16)               exact token of field *f* (``exact`` encoding)
``<f>_bf``         fixed_size_binary(bits / 8)         Bloom filter of field *f* (``bloom`` encoding)
``_blk_<pass>``    int64                               keyed blocking key of each ``[[blocking]]`` pass
=================  ==================================  =============================================

Row faults: a field value its normaliser refuses rejects the row (``line,column,reason``), unless the field says
``on_invalid = "keep"``: then the value's letters and digits are encoded as they are and the count of such values
per field is reported (``take_notes``), so nothing is lost and nothing is silent. A missing ``required`` field
rejects the row.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from matchkit.encode.fields import (
    NORMALISERS,
    BloomEncoder,
    blocking_part,
    blocking_tokens,
    exact_tokens,
    kept_invalid,
)
from matchkit.encode.keyed import KeyedHmac
from matchkit.encode.table import CACHE_LIMIT, Faults, map_unique
from matchkit.encode.tokens import Encoder
from matchkit.io.readers import Chunk
from matchkit.schema import Column, Schema

EXACT_CACHE_LIMIT = 200_000  # tokens remembered per field across chunks (~30 MB); repeats skip their HMAC


def bloom_column(field: str) -> str:
    return f"{field}_bf"


def token_column(field: str) -> str:
    return f"{field}_tok"


def blocking_column(pass_name: str) -> str:
    return f"_blk_{pass_name}"


def field_spec(column: Column) -> dict[str, Any]:
    """What two linkage files must agree on for a field to be compared (recorded in the manifest)."""
    spec: dict[str, Any] = {"type": column.type, "encodings": list(column.encodings)}
    if "bloom" in column.encodings:
        spec.update(bloom_bits=column.bloom_bits, bloom_k=column.bloom_k, salt=column.salt)
    return spec


class LinkTableEncoder:
    """Encodes chunks of a linkage schema; same interface as :class:`matchkit.encode.table.TableEncoder`."""

    def __init__(self, schema: Schema, encoder: Encoder) -> None:
        if schema.kind != "link":
            raise ValueError("LinkTableEncoder needs a linkage schema")
        self.schema = schema
        self.encoder = encoder
        self._exact_macs = {f.name: KeyedHmac(encoder.subkey(f"field:{f.name}:exact")) for f in schema.fields}
        self._blooms = {
            f.name: BloomEncoder(encoder.subkey(f"field:{f.name}:bloom"), f.type, f.bloom_bits, f.bloom_k)
            for f in schema.fields if "bloom" in f.encodings
        }
        self._blocking_key = encoder.subkey("blocking")
        self._caches: dict[str, dict[str, Any]] = {}
        self._notes: Counter[str] = Counter()
        self.arrow_schema = self._build_arrow_schema()

    def _build_arrow_schema(self) -> pa.Schema:
        fields = [pa.field("_line", pa.int64(), nullable=False)]
        if self.schema.record_id:
            fields.append(pa.field(self.schema.record_id, pa.string()))
        for column in self.schema.fields:
            if "exact" in column.encodings:
                fields.append(pa.field(token_column(column.name), pa.binary(16)))
            if "bloom" in column.encodings:
                fields.append(pa.field(bloom_column(column.name), pa.binary(column.bloom_bits // 8)))
        for blocking_pass in self.schema.blocking:
            fields.append(pa.field(blocking_column(blocking_pass.name), pa.int64()))
        return pa.schema(fields)

    def take_notes(self) -> dict[str, int]:
        """Counts noted since the last call (``kept_invalid:<field>``), then forgotten."""
        notes = dict(self._notes)
        self._notes.clear()
        return notes

    def encode(self, chunk: Chunk) -> tuple[pa.Table, list[tuple[int, str, str]]]:
        size = len(chunk)
        faults = Faults(size)
        empty = np.full(size, "", dtype=object)
        canonical: dict[str, list[str | None]] = {}
        for column in self.schema.fields:
            canonical[column.name] = self._normalise(column, chunk.columns.get(column.name, empty), faults)
        out: dict[str, Any] = {"_line": pa.array(chunk.lines, type=pa.int64())}
        record_id = self.schema.record_id
        if record_id:
            raw_ids = chunk.columns.get(record_id, empty)
            stripped = [str(v).strip() or None for v in raw_ids.tolist()]
            missing = np.fromiter((v is None for v in stripped), dtype=bool, count=size)
            faults.add(missing, record_id, "missing_value")
            out[record_id] = pa.array(stripped, type=pa.string())
        for column in self.schema.fields:
            values = canonical[column.name]
            if "exact" in column.encodings:
                out[token_column(column.name)] = pa.array(
                    exact_tokens(self._exact_macs[column.name], values, self._cache(f"exact:{column.name}", EXACT_CACHE_LIMIT)),
                    type=pa.binary(16))
            if "bloom" in column.encodings:
                salts = self._salts(column, canonical) if column.salt else None
                packed = self._blooms[column.name].encode(values, salts)
                present = np.fromiter((v is not None for v in values), dtype=bool, count=size)
                out[bloom_column(column.name)] = _fixed_binary(packed, present)
        for blocking_pass in self.schema.blocking:
            parts = [self._blocking_parts(field_name, transform, canonical[field_name])
                     for field_name, transform in blocking_pass.parts]
            keys = blocking_tokens(self._blocking_key, blocking_pass.name, parts)
            out[blocking_column(blocking_pass.name)] = pa.array(keys, type=pa.int64(), mask=keys == 0)
        table = pa.Table.from_arrays([out[f.name] for f in self.arrow_schema], schema=self.arrow_schema)
        rejected = faults.any_mask()
        if rejected.any():
            table = table.filter(pa.array(~rejected))
        return table, faults.describe(chunk.lines)

    def _blocking_parts(self, field_name: str, transform: str, values: list[str | None]) -> list[str | None]:
        field_type = self.schema.column(field_name).type

        def part(value: Any) -> str | None:
            return blocking_part(field_type, transform, value) if isinstance(value, str) else None

        return map_unique(np.asarray(values, dtype=object), part, self._cache(f"block:{field_name}:{transform}"))

    def _cache(self, name: str, limit: int = CACHE_LIMIT) -> dict[str, Any]:
        cache = self._caches.setdefault(name, {})
        if len(cache) > limit:
            cache.clear()  # bounded memory on huge files; only speed depends on the cache
        return cache

    def _normalise(self, column: Column, raw: np.ndarray, faults: Faults) -> list[str | None]:
        normaliser = NORMALISERS[column.type]
        results = map_unique(raw, normaliser, self._cache(f"norm:{column.type}"))
        values: list[str | None] = [r[0] for r in results]
        reasons = np.array([r[1] for r in results], dtype=object)
        bad = np.fromiter((r is not None for r in reasons.tolist()), dtype=bool, count=len(reasons))
        if bad.any():
            if column.on_invalid == "keep":
                for position in np.flatnonzero(bad).tolist():
                    values[position] = kept_invalid(raw[position])
                self._notes[f"kept_invalid:{column.name}"] += int(bad.sum())
            else:
                for reason in sorted(set(reasons[bad].tolist())):
                    faults.add(bad & (reasons == reason), column.name, reason)
        if column.required:
            missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
            if column.on_invalid != "keep":
                missing &= ~bad  # already rejected for being invalid
            faults.add(missing, column.name, "missing_value")
        return values

    def _salts(self, column: Column, canonical: dict[str, list[str | None]]) -> list[str | None]:
        assert column.salt is not None
        salt_field, _, transform = column.salt.partition(":")
        values = canonical[salt_field]
        if transform == "year":
            return [v[:4] if v is not None and len(v) >= 4 else None for v in values]
        return values


def _fixed_binary(packed: np.ndarray, present: np.ndarray) -> pa.Array:
    width = packed.shape[1]
    buffer = pa.py_buffer(np.ascontiguousarray(packed).tobytes())
    validity = pa.array(present).buffers()[1] if not present.all() else None
    return pa.Array.from_buffers(pa.binary(width), len(present), [validity, buffer], null_count=-1)
