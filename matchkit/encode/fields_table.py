"""Turn one chunk of raw rows into one hashed record batch per a *linkage* schema (``kind = "link"``).

Output layout (column names: :mod:`matchkit.encode.columns`; the file: :mod:`matchkit.io.hashed.format`):

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from matchkit.encode.chunk import Chunk
from matchkit.encode.codes import factorize
from matchkit.encode.columns import LINE_COLUMN, blocking_column, bloom_column, token_column
from matchkit.encode.fields import (
    NORMALISERS,
    BloomEncoder,
    blocking_part,
    blocking_tokens_of_parts,
    exact_token_table,
    kept_invalid,
)
from matchkit.encode.keyed import KeyedHmac
from matchkit.encode.person import Encoder
from matchkit.encode.person_table import CACHE_LIMIT, Faults, cached_map
from matchkit.schema import Column, Schema

EXACT_CACHE_LIMIT = 200_000  # tokens remembered per field across chunks (~30 MB); repeats skip their HMAC


class LinkTableEncoder:
    """Encodes chunks of a linkage schema; same interface as :class:`matchkit.encode.person_table.TableEncoder`."""

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
        fields = [pa.field(LINE_COLUMN, pa.int64(), nullable=False)]
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
        canonical: dict[str, Coded] = {}
        for column in self.schema.fields:
            canonical[column.name] = self._normalise(column, chunk.columns.get(column.name, empty), faults)
        out: dict[str, Any] = {LINE_COLUMN: pa.array(chunk.lines, type=pa.int64())}
        record_id = self.schema.record_id
        if record_id:
            raw_ids = chunk.columns.get(record_id, empty)
            stripped = [str(v).strip() or None for v in raw_ids.tolist()]
            missing = np.fromiter((v is None for v in stripped), dtype=bool, count=size)
            faults.add(missing, record_id, "missing_value")
            out[record_id] = pa.array(stripped, type=pa.string())
        for column in self.schema.fields:
            coded = canonical[column.name]
            if "exact" in column.encodings:
                out[token_column(column.name)] = self._exact(column.name, coded)
            if "bloom" in column.encodings:
                salt = self._salts(column, canonical) if column.salt else None
                packed = self._blooms[column.name].encode_coded(coded.codes, coded.values, *(
                    (salt.codes, salt.values) if salt is not None else (None, None)))
                out[bloom_column(column.name)] = _fixed_binary(packed, coded.codes >= 0)
        parts: dict[tuple[str, str], Coded] = {}  # a part shared by several passes is made once
        for blocking_pass in self.schema.blocking:
            for field_name, transform in blocking_pass.parts:
                if (field_name, transform) not in parts:
                    parts[field_name, transform] = (canonical[field_name] if transform == "exact"
                                                    else self._blocking_parts(field_name, transform,
                                                                              canonical[field_name]))
            keys = blocking_tokens_of_parts(self._blocking_key, blocking_pass.name,
                                            [(parts[p].codes, parts[p].values) for p in blocking_pass.parts])
            out[blocking_column(blocking_pass.name)] = pa.array(keys, type=pa.int64(), mask=keys == 0)
        table = pa.Table.from_arrays([out[f.name] for f in self.arrow_schema], schema=self.arrow_schema)
        rejected = faults.any_mask()
        if rejected.any():
            table = table.filter(pa.array(~rejected))
        return table, faults.describe(chunk.lines)

    def _exact(self, field_name: str, coded: Coded) -> pa.Array:
        """Exact tokens as a fixed-size binary column: one HMAC per distinct value (remembered across chunks), then
        a gather by code, with no per-record Python object."""
        table = exact_token_table(self._exact_macs[field_name], coded.values.tolist(),
                                  self._cache(f"exact:{field_name}", EXACT_CACHE_LIMIT))
        return _fixed_binary(table[coded.codes], coded.codes >= 0)  # code -1: the zero row, marked null

    def _blocking_parts(self, field_name: str, transform: str, coded: Coded) -> Coded:
        field_type = self.schema.column(field_name).type
        return coded.remap(cached_map(coded.values.tolist(), lambda value: blocking_part(field_type, transform, value),
                                      self._cache(f"block:{field_name}:{transform}")))

    def _cache(self, name: str, limit: int = CACHE_LIMIT) -> dict[str, Any]:
        cache = self._caches.setdefault(name, {})
        if len(cache) > limit:
            cache.clear()  # bounded memory on huge files; only speed depends on the cache
        return cache

    def _normalise(self, column: Column, raw: np.ndarray, faults: Faults) -> Coded:
        """The field's canonical values, coded; invalid values rejected (or kept, ``on_invalid = "keep"``) and
        missing required values noted as faults. The normaliser runs once per distinct raw value (per run)."""
        normaliser = NORMALISERS[column.type]
        raw_codes, raw_values = factorize(raw, missing_as_value=True)
        results = cached_map(raw_values.tolist(), normaliser, self._cache(f"norm:{column.type}"))
        values: list[str | None] = [canonical for canonical, _ in results]
        reasons = np.array([reason for _, reason in results], dtype=object)
        bad_value = np.array([reason is not None for _, reason in results], dtype=bool)
        bad = bad_value[raw_codes]
        if bad_value.any():
            if column.on_invalid == "keep":
                for position in np.flatnonzero(bad_value).tolist():
                    values[position] = kept_invalid(raw_values[position])
                self._notes[f"kept_invalid:{column.name}"] += int(bad.sum())
            else:
                row_reasons = reasons[raw_codes]
                for reason in sorted(set(reasons[bad_value].tolist())):
                    faults.add(bad & (row_reasons == reason), column.name, reason)
        coded = Coded(raw_codes, np.asarray(raw_values, dtype=object)).remap(values)
        if column.required:
            missing = coded.codes < 0
            if column.on_invalid != "keep":
                missing &= ~bad  # already rejected for being invalid
            faults.add(missing, column.name, "missing_value")
        return coded

    def _salts(self, column: Column, canonical: dict[str, Coded]) -> Coded:
        assert column.salt is not None
        salt_field, _, transform = column.salt.partition(":")
        coded = canonical[salt_field]
        if transform == "year":
            return coded.remap([v[:4] if len(v) >= 4 else None for v in coded.values.tolist()])
        return coded


@dataclass(frozen=True)
class Coded:
    """A column of one chunk as codes into its distinct values: ``values[codes[i]]`` is record *i*'s value, code -1
    where it has none. Every encoder works on the distinct values and gathers by code, so a value shared by many
    records costs once and no step loops over records in Python."""

    codes: np.ndarray  # int64 per record, -1 = no value
    values: np.ndarray  # object array of distinct str

    def remap(self, mapped: list[str | None]) -> Coded:
        """The column after mapping each distinct value (``mapped[j]`` for ``values[j]``; None = no value); values
        that map to the same result share one code again."""
        new_codes, new_values = factorize(mapped)
        lookup = np.append(new_codes, -1).astype(np.int64)  # code -1 stays -1
        return Coded(lookup[self.codes], np.asarray(new_values, dtype=object))


def _fixed_binary(packed: np.ndarray, present: np.ndarray) -> pa.Array:
    width = packed.shape[1]
    buffer = pa.py_buffer(np.ascontiguousarray(packed).tobytes())
    validity = pa.array(present).buffers()[1] if not present.all() else None
    return pa.Array.from_buffers(pa.binary(width), len(present), [validity, buffer], null_count=-1)
