"""Evidence tables derived once per run from the hashed extracts, all keyed by dense person codes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from matchkit.errors import InputFileError
from matchkit.link.blocking import sorted_unique

SOURCES = ("education", "household", "civil_affairs", "only_child", "medical_insurance")
# The people each extract describes (DESIGN.md entities).
ENTITIES: dict[str, tuple[str, ...]] = {
    "education": ("student",),
    "household": ("parent", "child"),
    "civil_affairs": ("person", "partner"),
    "only_child": ("person",),
    "medical_insurance": ("patient",),
}
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "education": ("student_id_tok", "education_stage", "enrolled_from", "enrolled_to"),
    "household": ("parent_id_tok", "child_id_tok"),
    "civil_affairs": ("event", "person_id_tok", "partner_id_tok", "event_date"),
    "only_child": ("person_id_tok",),
    "medical_insurance": ("patient_id_tok", "year", "out_of_pocket"),
}
NEVER = np.int64(10**9)  # an absolute month / date far in the future


def check_columns(name: str, table: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in table.columns]
    if missing:
        raise InputFileError(f"{name} extract lacks column(s): {', '.join(missing)}")


def text_values(column: pd.Series) -> np.ndarray:
    """Object array of a code column (None where absent) in which each distinct value is one shared Python object:
    an Arrow-backed column would otherwise become one new object per row."""
    if column.dtype == object:
        return column.to_numpy(dtype=object, na_value=None)
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    lookup = np.empty(len(uniques) + 1, dtype=object)  # the last cell (code -1) stays None
    lookup[: len(uniques)] = np.asarray(uniques, dtype=object)
    return lookup[codes]


def pair_keys(left: np.ndarray, right: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(left, dtype=np.int64) * np.int64(size + 1) + np.asarray(right, dtype=np.int64)


def sorted_in(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.searchsorted(sorted_set, values)
    pos[pos == len(sorted_set)] = 0
    return sorted_set[pos] == values


def ymd_values(column: pd.Series) -> np.ndarray:
    """YYYYMMDD as float (NaN when absent or not a date)."""
    if isinstance(column.dtype, pd.ArrowDtype) and pa.types.is_date32(column.dtype.pyarrow_dtype):
        days = column.array.__arrow_array__().cast(pa.int32()).to_numpy(zero_copy_only=False)
        valid = ~np.isnan(days.astype(np.float64))
        dates = np.where(valid, days, 0).astype(np.int64).astype("datetime64[D]")
        years = dates.astype("datetime64[Y]")
        months = dates.astype("datetime64[M]")
        ymd = ((years.astype(np.int64) + 1970) * 10_000 + (months - years).astype(np.int64) * 100 + 100
               + (dates - months).astype(np.int64) + 1).astype(np.float64)
        return np.where(valid, ymd, np.nan)
    stamps = pd.to_datetime(column, errors="coerce")
    ymd = (stamps.dt.year * 10_000 + stamps.dt.month * 100 + stamps.dt.day).to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return ymd


def _int_column(column: pd.Series, fill: int) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").fillna(fill).to_numpy(dtype=np.int64)


def ym_to_abs(ym: np.ndarray) -> np.ndarray:
    ym = np.asarray(ym, dtype=np.int64)
    return (ym // 100) * 12 + (ym % 100) - 1


@dataclass
class Evidence:
    size: int  # number of distinct person codes in the run
    supplied: frozenset[str]
    present: dict[str, np.ndarray] = field(default_factory=dict)  # source -> bool per code
    household_pairs: np.ndarray = field(
        default_factory=lambda: np.zeros(0, np.int64)
    )  # sorted parent*K+child
    spells: pd.DataFrame | None = None  # code, stage, from_abs, to_abs
    first_compulsory: np.ndarray | None = (
        None  # per code: abs month of first compulsory spell start, NEVER if none
    )
    death_year: np.ndarray | None = None  # per code, NEVER if no death recorded
    marriages: pd.DataFrame | None = None  # pair key (min, max), start_ymd, end_ymd
    only_child: np.ndarray | None = None  # per code bool
    oop_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # sorted code*10000+year
    oop_values: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def in_household(self, parent: np.ndarray, child: np.ndarray) -> np.ndarray:
        ok = (parent >= 0) & (child >= 0)
        return ok & sorted_in(pair_keys(parent, child, self.size), self.household_pairs)

    def out_of_pocket(self, codes: np.ndarray, years: np.ndarray) -> np.ndarray:
        keys = np.asarray(codes, dtype=np.int64) * 10_000 + np.asarray(years, dtype=np.int64)
        if len(self.oop_keys) == 0:
            return np.zeros(len(keys))
        pos = np.searchsorted(self.oop_keys, keys)
        pos[pos == len(self.oop_keys)] = 0
        hit = (self.oop_keys[pos] == keys) & (np.asarray(codes) >= 0)
        return np.where(hit, self.oop_values[pos], 0.0)

    def married_in_year(self, a: np.ndarray, b: np.ndarray, years: np.ndarray) -> np.ndarray:
        """A marriage between a and b in force on at least one day of the year."""
        out = np.zeros(len(a), dtype=bool)
        if self.marriages is None or len(self.marriages) == 0 or len(a) == 0:
            return out
        lines = pd.DataFrame(
            {
                "row": np.arange(len(a)),
                "pair": pair_keys(np.minimum(a, b), np.maximum(a, b), self.size),
                "year": np.asarray(years, dtype=np.int64),
            }
        )
        lines = lines[(np.asarray(a) >= 0) & (np.asarray(b) >= 0)]
        joined = lines.merge(self.marriages, on="pair", how="inner")
        in_force = (joined["start_ymd"] <= joined["year"] * 10_000 + 1231) & (
            joined["end_ymd"] >= joined["year"] * 10_000 + 101
        )
        out[joined.loc[in_force, "row"].to_numpy()] = True
        return out


def presence(
    sources: dict[str, pd.DataFrame], codes: dict[tuple[str, str], np.ndarray], size: int
) -> dict[str, np.ndarray]:
    """Per source, a bool per person code: the person is in that extract."""
    out = {}
    for name in sources:
        present = np.zeros(size + 1, dtype=bool)  # last cell absorbs -1 (no token)
        for entity in ENTITIES[name]:
            present[codes[(name, entity)]] = True
        present[-1] = False
        out[name] = present[:size]
    return out


def build_evidence(
    sources: dict[str, pd.DataFrame], codes: dict[tuple[str, str], np.ndarray], size: int, *,
    supplied: frozenset[str] | None = None, extra_deaths: tuple[np.ndarray, np.ndarray] | None = None,
) -> Evidence:
    """``codes[(source, entity)]`` holds the interned ``E_id_tok`` codes of each extract row. ``supplied``: the
    extracts of the run (default: ``sources``; a partition's ``sources`` holds each of them, maybe empty).
    ``extra_deaths``: (person codes, YYYYMMDD) of deaths recorded in rows this table does not hold (a partitioned
    run's taxpayers), for the end of a marriage."""
    ev = Evidence(size=size, supplied=frozenset(sources) if supplied is None else supplied)
    ev.present = presence(sources, codes, size)

    if "household" in sources:
        parent, child = codes[("household", "parent")], codes[("household", "child")]
        ok = (parent >= 0) & (child >= 0)
        ev.household_pairs = sorted_unique(pair_keys(parent[ok], child[ok], size))

    if "education" in sources:
        table = sources["education"]
        student = codes[("education", "student")]
        spells = pd.DataFrame(
            {
                "code": student,
                "stage": text_values(table["education_stage"]),
                "from_abs": ym_to_abs(_int_column(table["enrolled_from"], 0)),
                "to_abs": np.where(
                    table["enrolled_to"].isna().to_numpy(),
                    NEVER,
                    ym_to_abs(_int_column(table["enrolled_to"], 0)),
                ),
            }
        )
        spells = spells[spells["code"] >= 0]
        ev.spells = spells
        first = np.full(size, NEVER, dtype=np.int64)
        compulsory = spells[spells["stage"] == "compulsory"]
        np.minimum.at(first, compulsory["code"].to_numpy(), compulsory["from_abs"].to_numpy())
        ev.first_compulsory = first

    if "civil_affairs" in sources:
        table = sources["civil_affairs"]
        person, partner = codes[("civil_affairs", "person")], codes[("civil_affairs", "partner")]
        event = text_values(table["event"])
        ymd = ymd_values(table["event_date"])
        death = (event == "death") & (person >= 0) & ~np.isnan(ymd)
        death_year = np.full(size, NEVER, dtype=np.int64)
        np.minimum.at(death_year, person[death], (ymd[death] // 10_000).astype(np.int64))
        ev.death_year = death_year
        death_ymd = np.full(size, np.inf)
        np.minimum.at(death_ymd, person[death], ymd[death])
        if extra_deaths is not None:
            np.minimum.at(death_ymd, extra_deaths[0], extra_deaths[1])
        couple = (person >= 0) & (partner >= 0) & ~np.isnan(ymd)
        pair = pair_keys(np.minimum(person, partner), np.maximum(person, partner), size)
        marriage = couple & (event == "marriage")
        divorce = couple & (event == "divorce")
        mar = pd.DataFrame(
            {
                "pair": pair[marriage],
                "start_ymd": ymd[marriage],
                "a": np.minimum(person, partner)[marriage],
                "b": np.maximum(person, partner)[marriage],
            }
        )
        div = pd.DataFrame({"pair": pair[divorce], "div_ymd": ymd[divorce]})
        # A marriage ends at the first divorce of the couple registered on or after it, or a partner's death.
        ends = mar.reset_index(names="marriage").merge(div, on="pair", how="left")
        ends = ends[ends["div_ymd"] >= ends["start_ymd"]].groupby("marriage")["div_ymd"].min()
        end = np.full(len(mar), np.inf)
        end[ends.index.to_numpy()] = ends.to_numpy()
        end = np.minimum(end, np.minimum(death_ymd[mar["a"].to_numpy()], death_ymd[mar["b"].to_numpy()]))
        ev.marriages = pd.DataFrame(
            {"pair": mar["pair"].to_numpy(), "start_ymd": mar["start_ymd"].to_numpy(), "end_ymd": end}
        )

    if "only_child" in sources:
        ev.only_child = ev.present["only_child"]

    if "medical_insurance" in sources:
        table = sources["medical_insurance"]
        patient = codes[("medical_insurance", "patient")]
        years = _int_column(table["year"], -1)
        oop = pd.to_numeric(table["out_of_pocket"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
        keep = (patient >= 0) & (years >= 0)
        keys = patient[keep] * 10_000 + years[keep]
        group, uniques = pd.factorize(keys)
        sums = np.bincount(group, weights=oop[keep], minlength=len(uniques))
        order = np.argsort(uniques)
        ev.oop_keys = np.asarray(uniques, dtype=np.int64)[order]
        ev.oop_values = np.round(sums[order], 2)
    return ev
