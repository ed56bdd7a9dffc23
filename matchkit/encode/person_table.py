"""Turn one chunk of raw rows into one hashed record batch, per a source schema, rejecting what cannot be used.

Every normaliser is applied once per *distinct* value of a column (``pandas.factorize``), because values repeat:
birth dates, names, stages, months. Each fault is recorded as (line, column, reason); a row with any fault is left out
of the batch and reported once with all its faults. No raw value is ever kept in a fault.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from matchkit.encode.chunk import Chunk
from matchkit.encode.codes import factorize
from matchkit.encode.columns import (
    BIRTH_YM,
    DOB_TOKEN,
    ID_BIRTH_YM,
    ID_NEAR,
    ID_TOKEN,
    ID_VALID,
    LINE_COLUMN,
    NAME_FUZZY,
    person_column,
)
from matchkit.encode.person import Encoder
from matchkit.normalize import dates, ids, names, values
from matchkit.normalize.ids_vec import valid_id18
from matchkit.schema import Column, Entity, Schema

Parser = Callable[[str], tuple[Any, str | None]]

CODE_PARSERS: dict[str, Parser] = {
    "deduction": values.parse_deduction,
    "stage": values.parse_stage,
    "relation": values.parse_relation,
    "event": values.parse_event,
}
CACHE_LIMIT = 2_000_000


def _parse_month(raw: str) -> tuple[Any, str | None]:
    return dates.parse_month(raw)


def _parse_date(raw: str) -> tuple[Any, str | None]:
    return dates.parse_date(raw)


def _parse_year(raw: str) -> tuple[Any, str | None]:
    return values.parse_year(raw)


CLEAR_PARSERS: dict[str, Parser] = {
    "month": _parse_month,
    "date": _parse_date,
    "year": _parse_year,
    "amount": values.parse_amount,
    "share": values.parse_share,
    "bool": values.parse_bool,
    "text": lambda raw: (raw.strip() or None, None),
    "record_id": lambda raw: (raw.strip() or None, None),
}
CLEAR_ARROW_TYPES: dict[str, pa.DataType] = {
    "month": pa.int32(), "date": pa.date32(), "year": pa.int32(), "amount": pa.float64(), "share": pa.float64(),
    "bool": pa.bool_(), "text": pa.string(), "record_id": pa.string(), "code": pa.string(),
}


@dataclass
class Faults:
    """Per-row faults of one chunk, kept as masks until the end (most rows have none)."""

    size: int
    masks: list[tuple[np.ndarray, str, str]] = field(default_factory=list)

    def add(self, mask: np.ndarray, column: str, reason: str) -> None:
        if mask.any():
            self.masks.append((mask, column, reason))

    def any_mask(self) -> np.ndarray:
        combined = np.zeros(self.size, dtype=bool)
        for mask, _, _ in self.masks:
            combined |= mask
        return combined

    def describe(self, lines: np.ndarray) -> list[tuple[int, str, str]]:
        per_row: dict[int, list[tuple[str, str]]] = {}
        for mask, column, reason in self.masks:
            for position in np.flatnonzero(mask).tolist():
                per_row.setdefault(position, []).append((column, reason))
        out = []
        for position in sorted(per_row):
            faults = per_row[position]
            out.append((int(lines[position]), ";".join(c for c, _ in faults), ";".join(r for _, r in faults)))
        return out


def cached_map(values: Iterable[Any], function: Callable[[Any], Any], cache: dict[Any, Any]) -> list[Any]:
    """``[function(v) for v in values]``, remembering each result in ``cache`` (the caller bounds its size)."""
    results = []
    for value in values:
        hit = cache.get(value, cache)
        if hit is cache:
            hit = cache[value] = function(value)
        results.append(hit)
    return results


def unique_map(raw: np.ndarray, parser: Callable[[str], Any],
               cache: dict[str, Any] | None = None) -> tuple[np.ndarray, list[Any]]:
    """``(codes, results)``: ``parser`` applied once per distinct value of ``raw`` (and once per run with a
    cache), and each row's code into those results (missing values are a value of their own)."""
    codes, uniques = factorize(raw, missing_as_value=True)
    if cache is None:
        results = [parser(value) for value in uniques]
    else:
        if len(cache) > CACHE_LIMIT:
            cache.clear()
        results = cached_map(uniques, parser, cache)
    return codes, results


def map_unique(raw: np.ndarray, parser: Callable[[str], Any], cache: dict[str, Any] | None = None) -> list[Any]:
    """``[parser(v) for v in raw]``, calling the parser once per distinct value (and once per run with a cache)."""
    codes, results = unique_map(raw, parser, cache)
    lookup = np.empty(len(results), dtype=object)
    lookup[:] = results
    return lookup[codes].tolist()


class TableEncoder:
    """Encodes chunks of one source. Holds caches across chunks and the set of record ids seen so far."""

    def __init__(self, schema: Schema, encoder: Encoder, *, today: date | None = None) -> None:
        self.schema = schema
        self.encoder = encoder
        self.today = today
        self._seen_record_ids: set[str] = set()
        self._caches: dict[str, dict[str, Any]] = {}
        self.arrow_schema = self._build_arrow_schema()

    # --- output layout ------------------------------------------------------------------------------------------
    def _build_arrow_schema(self) -> pa.Schema:
        fields: list[pa.Field] = [pa.field(LINE_COLUMN, pa.int64(), nullable=False)]
        entity_columns: set[str] = set()
        for entity in self.schema.entities:
            for role_column in (entity.id, entity.id_type, entity.person_name, entity.birth_date):
                if role_column:
                    entity_columns.add(role_column)
        for column in self.schema.columns:
            if column.name in entity_columns:
                continue
            fields.append(pa.field(column.name, CLEAR_ARROW_TYPES[column.type]))
        for entity in self.schema.entities:
            prefix = entity.name
            fields.append(pa.field(person_column(prefix, ID_TOKEN), pa.binary(16)))
            fields.append(pa.field(person_column(prefix, ID_VALID), pa.bool_()))
            if entity.fuzzy:
                fields.append(pa.field(person_column(prefix, ID_NEAR), pa.list_(pa.int64())))
                fields.append(pa.field(person_column(prefix, NAME_FUZZY), pa.list_(pa.int64())))
                fields.append(pa.field(person_column(prefix, DOB_TOKEN), pa.binary(16)))
            if entity.keep_birth_month:
                fields.append(pa.field(person_column(prefix, BIRTH_YM), pa.int32()))
                fields.append(pa.field(person_column(prefix, ID_BIRTH_YM), pa.int32()))
        return pa.schema(fields)

    # --- one chunk ----------------------------------------------------------------------------------------------
    def encode(self, chunk: Chunk) -> tuple[pa.Table, list[tuple[int, str, str]]]:
        size = len(chunk)
        faults = Faults(size)
        empty = np.full(size, "", dtype=object)
        raw = {column.name: chunk.columns.get(column.name, empty) for column in self.schema.columns}
        is_blank = {name: _blank_mask(values_) for name, values_ in raw.items()}
        out: dict[str, Any] = {LINE_COLUMN: chunk.lines}

        entity_columns: set[str] = set()
        for entity in self.schema.entities:
            entity_columns.update(c for c in (entity.id, entity.id_type, entity.person_name, entity.birth_date) if c)
        clear: dict[str, list[Any]] = {}
        for column in self.schema.columns:
            if column.name in entity_columns:
                continue
            clear[column.name] = self._clear_column(column, raw[column.name], is_blank[column.name], faults)
        self._row_checks(clear, is_blank, faults)
        for column_name, parsed in clear.items():
            out[column_name] = parsed
        for entity in self.schema.entities:
            out.update(self._entity_columns(entity, raw, is_blank, faults))

        rejected = faults.any_mask()
        arrays = []
        for schema_field in self.arrow_schema:
            column_values = out[schema_field.name]
            if isinstance(column_values, pa.Array):
                arrays.append(column_values)
            else:
                arrays.append(pa.array(column_values, type=schema_field.type))
        table = pa.Table.from_arrays(arrays, schema=self.arrow_schema)
        if rejected.any():
            table = table.filter(pa.array(~rejected))
        return table, faults.describe(chunk.lines)

    def _cache(self, name: str) -> dict[str, Any]:
        return self._caches.setdefault(name, {})

    def _clear_column(self, column: Column, raw: np.ndarray, blank: np.ndarray, faults: Faults) -> list[Any]:
        if column.type == "code":
            parser = CODE_PARSERS[str(column.vocabulary)]
        else:
            parser = CLEAR_PARSERS[column.type]
        results = map_unique(raw, lambda v: (None, None) if not str(v).strip() else parser(v),
                             self._cache(f"clear:{column.type}:{column.vocabulary}"))
        parsed = [r[0] for r in results]
        reasons = np.array([r[1] for r in results], dtype=object)
        bad = _not_none(reasons) & ~blank
        for reason in sorted({r for r in reasons[bad].tolist()}):
            faults.add(bad & (reasons == reason), column.name, reason)
        if column.required:
            faults.add(blank, column.name, "missing_value")
        if column.type == "date":
            parsed = [v if isinstance(v, date) else None for v in parsed]
        return parsed

    # --- row checks that involve several columns ----------------------------------------------------------------
    def _row_checks(self, clear: dict[str, list[Any]], blank: dict[str, np.ndarray], faults: Faults) -> None:
        checks = set(self.schema.row_checks)
        if "claim_period" in checks:
            self._check_claim_period(clear, faults)
        if "claim_amount" in checks:
            self._check_claim_amount(clear, faults)
        if "partner_for_couple_events" in checks:
            event = np.array(clear["event"], dtype=object)
            couple = (event == "marriage") | (event == "divorce")
            faults.add(couple & blank["partner_id"], "partner_id", "missing_value")
        if "enrolment_order" in checks:
            start, has_start = _optional_ints(clear["enrolled_from"])
            end, has_end = _optional_ints(clear["enrolled_to"])
            faults.add(has_start & has_end & (end < start), "enrolled_to", "period_reversed")

    def _check_claim_period(self, clear: dict[str, list[Any]], faults: Faults) -> None:
        year, has_year = _optional_ints(clear["tax_year"])
        start, has_start = _optional_ints(clear["period_start"])
        end, has_end = _optional_ints(clear["period_end"])
        # a missing period bound means the whole tax year: January or December of it
        start, has_start = np.where(has_start, start, year * 100 + 1), has_start | has_year
        end, has_end = np.where(has_end, end, year * 100 + 12), has_end | has_year
        faults.add(has_start & has_year & (start // 100 != year), "period_start", "period_outside_tax_year")
        faults.add(has_end & has_year & (end // 100 != year), "period_end", "period_outside_tax_year")
        faults.add(has_start & has_end & (end < start), "period_end", "period_reversed")
        clear["period_start"] = [int(v) if present else None for v, present in zip(start.tolist(), has_start.tolist())]
        clear["period_end"] = [int(v) if present else None for v, present in zip(end.tolist(), has_end.tolist())]

    def _check_claim_amount(self, clear: dict[str, list[Any]], faults: Faults) -> None:
        neither = ~_present(clear["monthly_amount"]) & ~_present(clear["annual_amount"])
        faults.add(neither, "monthly_amount;annual_amount", "missing_amount")
        deduction = np.array(clear["deduction"], dtype=object)
        needs_stage = deduction == "children_education"
        stage_missing = np.array([v is None for v in clear["education_stage"]], dtype=bool)
        faults.add(needs_stage & stage_missing, "education_stage", "missing_value")
        clear["share"] = [1.0 if v is None else v for v in clear["share"]]

    # --- entities -----------------------------------------------------------------------------------------------
    def _entity_columns(self, entity: Entity, raw: dict[str, np.ndarray], blank: dict[str, np.ndarray],
                        faults: Faults) -> dict[str, Any]:
        size = faults.size
        prefix = entity.name
        if entity.id_type:
            type_results = map_unique(raw[entity.id_type], lambda v: ids.normalize_id_type(v) if str(v).strip()
                                      else "resident", self._cache("id_type"))
            id_types = np.array(type_results, dtype=object)
            faults.add(_is_none(id_types), entity.id_type, "unknown_id_type")
            id_types = np.where(_is_none(id_types), "resident", id_types)
            gb_type = np.isin(id_types, list(ids.GB11643_TYPES))
        else:
            id_types = None
            gb_type = np.ones(size, dtype=bool)
        id_raw = raw[entity.id]
        id_blank = blank[entity.id]

        # Clean GB 11643 numbers take the vectorised path; everything else the scalar reference.
        fast_ok, id_birth = valid_id18(np.where(gb_type, id_raw, ""))
        values_ = id_raw.copy()
        values_[~fast_ok] = None
        statuses = np.where(fast_ok, "ok", "").astype(object)
        shaped = fast_ok.copy()  # a canonical value shaped [0-9]{17}[0-9X] (valid or not): near tokens need it
        slow = np.flatnonzero(~fast_ok)
        if len(slow):
            slow_types = id_types[slow] if id_types is not None else np.full(len(slow), "resident", dtype=object)
            pairs = np.array([f"{t}\x1f{v}" for t, v in zip(slow_types.tolist(), id_raw[slow].tolist())],
                             dtype=object)
            codes, results = unique_map(pairs, _normalize_id_pair, self._cache("id"))
            distinct_values = np.empty(len(results), dtype=object)
            distinct_values[:] = [r[0].value for r in results]
            values_[slow] = distinct_values[codes]
            distinct_statuses = np.array([r[0].status for r in results], dtype=object)
            statuses[slow] = distinct_statuses[codes]
            id_birth[slow] = np.array([r[1] for r in results], dtype=np.int64)[codes]
            shaped[slow] = np.array([r[2] for r in results], dtype=bool)[codes]
        valid = statuses == "ok"
        if entity.required:
            faults.add(id_blank, entity.id, "missing_value")
        invalid = ~valid & ~id_blank
        if entity.invalid_id == "reject":
            for status in sorted(set(statuses[invalid].tolist())):
                faults.add(invalid & (statuses == status), entity.id, f"invalid_id_{status}")
        # canonical ID messages: RID:<18 chars> for GB 11643 types, <type>:<value> for the others
        value_array = pa.array(values_, type=pa.string(), mask=~valid)
        if id_types is None or gb_type[valid].all():
            prefixes: Any = pa.scalar("RID:")
        else:
            prefixes = pa.array(np.where(gb_type, "RID:", id_types + ":"), type=pa.string())
        canonical = pc.binary_join_element_wise(prefixes, value_array, "")
        columns: dict[str, Any] = {
            person_column(prefix, ID_TOKEN): self.encoder.id_token_array(canonical),
            person_column(prefix, ID_VALID): pa.array(valid, mask=id_blank),
        }
        # birth date: the entity's own column when present and valid, else the date inside a GB 11643 ID
        salts = id_birth.copy()
        if entity.birth_date:
            date_results = map_unique(raw[entity.birth_date], lambda v: (None, None) if not str(v).strip()
                                      else dates.parse_date(v), self._cache("birth_date"))
            column_dates = np.array([_yyyymmdd(r[0]) if r[0] is not None else 0 for r in date_results],
                                    dtype=np.int64)
            reasons = np.array([r[1] for r in date_results], dtype=object)
            bad = _not_none(reasons) & ~blank[entity.birth_date]
            for reason in sorted(set(reasons[bad].tolist())):
                faults.add(bad & (reasons == reason), entity.birth_date, reason)
            salts = np.where(column_dates > 0, column_dates, salts)
        if entity.fuzzy:
            near = self.encoder.id_near_tokens_ascii(_id_bodies(values_[shaped]))
            columns[person_column(prefix, ID_NEAR)] = _fixed_lists(near, shaped)
            if entity.person_name:
                codes, digest_rows = unique_map(raw[entity.person_name], self._name_digests_or_fault,
                                                self._cache("name"))
                bad_name = np.array([isinstance(r, str) for r in digest_rows], dtype=bool)[codes]
                faults.add(bad_name & ~blank[entity.person_name], entity.person_name, "invalid_name")
                rows = [r if isinstance(r, bytes) else b"" for r in digest_rows]
                tokens, counts = self.encoder.name_fuzzy_by_code(rows, codes, salts)
                offsets = np.zeros(size + 1, dtype=np.int32)
                np.cumsum(counts, out=offsets[1:])
                columns[person_column(prefix, NAME_FUZZY)] = pa.ListArray.from_arrays(
                    pa.array(offsets), pa.array(tokens, type=pa.int64()), mask=pa.array(counts == 0))
            else:
                columns[person_column(prefix, NAME_FUZZY)] = pa.nulls(size, pa.list_(pa.int64()))
            columns[person_column(prefix, DOB_TOKEN)] = self.encoder.dob_token_array(salts)
        elif entity.person_name:
            problems = map_unique(raw[entity.person_name], _name_problem, self._cache("name_problem"))
            bad_name = np.array([p is not None and p != "empty" for p in problems], dtype=bool)
            faults.add(bad_name & ~blank[entity.person_name], entity.person_name, "invalid_name")
        if entity.keep_birth_month:
            columns[person_column(prefix, BIRTH_YM)] = pa.array(salts // 100, type=pa.int32(), mask=salts == 0)
            id_month = np.where(valid, id_birth // 100, 0)
            columns[person_column(prefix, ID_BIRTH_YM)] = pa.array(id_month, type=pa.int32(), mask=id_month == 0)
        return columns

    def _name_digests_or_fault(self, raw: str) -> bytes | str | None:
        """``name_digests`` of the name's variants, or a reason code, or None when empty (memoised per name by the
        caller)."""
        parts = _name_parts_or_fault(raw)
        if parts is None or isinstance(parts, str):
            return parts
        return self.encoder.name_digests_of(*parts)


def _fixed_lists(matrix: np.ndarray, present: np.ndarray) -> pa.Array:
    """A list<int64> column: row *i* holds the next row of ``matrix`` where ``present[i]``, else null."""
    width = matrix.shape[1] if matrix.ndim == 2 else 0
    counts = np.where(present, width, 0)
    offsets = np.zeros(len(present) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(matrix.ravel(), type=pa.int64()),
                                    mask=pa.array(~present))


def _is_none(values: np.ndarray) -> np.ndarray:
    """Which cells are None (the cells hold parser results: text, numbers, dates, None)."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(values == None, dtype=bool)  # elementwise on an object array


def _present(values: list[Any]) -> np.ndarray:
    """Which cells of a parsed number column hold a number (None and NaN are missing)."""
    return np.fromiter((v is not None and not (isinstance(v, float) and math.isnan(v)) for v in values), dtype=bool,
                       count=len(values))


def _optional_ints(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(int64 values, present)`` of a parsed integer column (0 where missing)."""
    present = _present(values)
    return np.array([int(v) if ok else 0 for v, ok in zip(values, present.tolist())], dtype=np.int64), present


def _not_none(values: np.ndarray) -> np.ndarray:
    return ~_is_none(values)


def _blank_mask(raw: np.ndarray) -> np.ndarray:
    """True where a cell is empty or only white space (vectorised through Arrow)."""
    if len(raw) == 0:
        return np.zeros(0, dtype=bool)
    trimmed = pc.utf8_trim_whitespace(pa.array(raw, type=pa.string(), from_pandas=True))
    return np.asarray(pc.fill_null(pc.equal(trimmed, ""), True).to_numpy(zero_copy_only=False), dtype=bool)


class RecordIdChecker:
    """Refuses repeated record ids across a whole file (the repeat is a row reject, SPEC §5)."""

    def __init__(self, column: str | None) -> None:
        self.column = column
        self._seen: set[str] = set()

    def check(self, table: pa.Table) -> tuple[pa.Table, list[tuple[int, str, str]]]:
        if self.column is None or table.num_rows == 0:
            return table, []
        seen = self._seen
        repeated = np.zeros(table.num_rows, dtype=bool)
        for position, value in enumerate(table.column(self.column).to_pylist()):
            if value in seen:
                repeated[position] = True
            else:
                seen.add(value)
        if not repeated.any():
            return table, []
        lines = table.column(LINE_COLUMN).to_numpy()[repeated].tolist()
        return table.filter(pa.array(~repeated)), [(line, self.column, "duplicate_record_id") for line in lines]


def _normalize_id_pair(pair: str) -> tuple[ids.IdResult, int, bool]:
    """``(result, birth, shaped)`` of one ``type\x1fvalue`` pair: the normalised ID; for a GB 11643 type the birth
    date inside its canonical value as YYYYMMDD (0 when none, whether the ID is valid or not); and whether that
    value is shaped ``[0-9]{17}[0-9X]`` (near tokens are built from its body)."""
    id_type, _, value = pair.partition("\x1f")
    result = ids.IdResult(None, "empty") if not value.strip() else ids.normalize_id(value, id_type)
    birth = 0
    if result.value and id_type in ids.GB11643_TYPES:
        born = ids.birth_date_from_id(result.value)
        if born is not None:
            birth = _yyyymmdd(born)
    return result, birth, ids.id_body17(result.value) is not None


def _id_bodies(values: np.ndarray) -> bytes:
    """The 17-digit bodies of canonical values all shaped ``[0-9]{17}[0-9X]``, concatenated as ASCII."""
    if len(values) == 0:
        return b""
    joined = np.frombuffer("".join(values.tolist()).encode("ascii"), dtype=np.uint8).reshape(-1, 18)
    return joined[:, :17].tobytes()


MAX_NAME_CHARS = 100  # longer is not a name, and its deletion variants would cost quadratic time and memory
_PLAIN_CJK_NAME = re.compile(r"[\u4e00-\u9fff]{1,20}")


def _name_parts_or_fault(raw: str) -> tuple[str, tuple[str, ...]] | str | None:
    """``(normalised name, its pinyin)``, or a reason code when the name is unusable, or None when empty."""
    if type(raw) is str and len(raw) <= 20 and _PLAIN_CJK_NAME.fullmatch(raw):  # the common case, fast
        normalised = names.normalize_plain_cjk_name(raw)
        if normalised is not None:
            return normalised, names.name_pinyin(normalised)
    if not str(raw).strip():
        return None
    if len(raw) > MAX_NAME_CHARS:
        return "name_too_long"
    if not _PLAIN_CJK_NAME.fullmatch(raw):  # the common case, ideographs only, cannot be malformed
        problem = names.name_problem(raw)
        if problem == "empty":
            return None
        if problem is not None:
            return problem
    normalised = names.normalize_name(raw)
    if normalised is None:
        return None
    return normalised, names.name_pinyin(normalised)


def _name_problem(raw: Any) -> str | None:
    """``names.name_problem``, with the common case (plain ideographs) decided without the general pipeline."""
    if type(raw) is str and len(raw) <= 20 and _PLAIN_CJK_NAME.fullmatch(raw):
        normalised = names.normalize_plain_cjk_name(raw)
        if normalised is not None and normalised.isalpha():
            return None
    return names.name_problem(raw)


def _yyyymmdd(value: date) -> int:
    return value.year * 10000 + value.month * 100 + value.day
