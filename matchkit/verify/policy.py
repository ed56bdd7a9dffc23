"""Policy figures (``matchkit/data/policy.toml``, read through :mod:`matchkit.resources`), validated on load and looked up per month.

The file is data, not code: every figure a rule uses comes from here. Periods are keyed by their effective date (the
first day of a month) and each period is complete, so a deduction missing from a period does not exist in it.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from matchkit.errors import SchemaError
from matchkit.resources import policy_file

# Fields each deduction must carry (all positive numbers).
DEDUCTION_FIELDS: dict[str, tuple[str, ...]] = {
    "children_education": ("monthly",),
    "elderly_support": ("monthly", "per_sibling_cap"),
    "serious_illness": ("threshold", "annual_cap"),
    "infant_care": ("monthly",),
    "continuing_education": ("monthly", "certificate_year", "max_months"),
    "housing_loan_interest": ("monthly", "max_months"),
    "housing_rent": ("tier1", "tier2", "tier3"),
}
AGE_FIELDS = ("preschool_from", "preschool_until", "infant_care_until", "elderly_from", "minor_under")


@dataclass(frozen=True)
class Period:
    effective: dt.date
    basis: str
    standards: dict[str, dict[str, float]]

    @property
    def effective_month(self) -> int:
        """Absolute month number (year * 12 + month - 1) from which this period applies."""
        return self.effective.year * 12 + self.effective.month - 1


@dataclass(frozen=True)
class Policy:
    periods: tuple[Period, ...]
    ages: dict[str, int] = field(default_factory=dict)
    path: str | None = None

    def figure_by_month(self, deduction: str, name: str, abs_months: np.ndarray) -> np.ndarray:
        """The figure in force for each absolute month (year*12 + month-1); NaN where the deduction does not exist."""
        table = np.array(
            [p.standards.get(deduction, {}).get(name, np.nan) for p in self.periods], dtype=np.float64
        )
        starts = np.array([p.effective_month for p in self.periods], dtype=np.int64)
        version = np.searchsorted(starts, np.asarray(abs_months, dtype=np.int64), side="right") - 1
        out = np.full(version.shape, np.nan)
        ok = version >= 0
        out[ok] = table[version[ok]]
        return out

    def figure_by_year(self, deduction: str, name: str, years: np.ndarray) -> np.ndarray:
        """The figure in force on 1 January of each tax year (annual deductions)."""
        return self.figure_by_month(deduction, name, np.asarray(years, dtype=np.int64) * 12)


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def parse_policy(data: dict[str, Any], *, path: str | Path | None = None) -> Policy:
    """Validate a parsed policy document; every problem is reported at once with its path."""
    problems: list[str] = []
    if data.get("format") != "matchkit-policy":
        problems.append("format: must be 'matchkit-policy'")
    if data.get("version") != 1:
        problems.append("version: unsupported policy format version (expected 1)")
    unknown_top = set(data) - {"format", "version", "ages", "periods"}
    problems += [f"{key}: unknown key" for key in sorted(unknown_top)]

    ages_raw = data.get("ages")
    ages: dict[str, int] = {}
    if not isinstance(ages_raw, dict):
        problems.append("ages: missing table")
    else:
        for key in AGE_FIELDS:
            value = ages_raw.get(key)
            if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                problems.append(f"ages.{key}: must be a positive whole number of years")
            else:
                ages[key] = value
        problems += [f"ages.{key}: unknown key" for key in sorted(set(ages_raw) - set(AGE_FIELDS))]

    periods_raw = data.get("periods")
    periods: list[Period] = []
    if not isinstance(periods_raw, list) or not periods_raw:
        problems.append("periods: at least one [[periods]] entry is required")
        periods_raw = []
    previous: dt.date | None = None
    for i, entry in enumerate(periods_raw):
        where = f"periods[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        effective = entry.get("effective")
        if not isinstance(effective, dt.date) or isinstance(effective, dt.datetime):
            problems.append(f"{where}.effective: must be a date (YYYY-MM-DD)")
            effective = None
        elif effective.day != 1:
            problems.append(f"{where}.effective: must be the first day of a month")
        if effective is not None and previous is not None and effective <= previous:
            problems.append(f"{where}.effective: must be later than the previous period's")
        previous = effective if effective is not None else previous
        basis = entry.get("basis", "")
        if not isinstance(basis, str):
            problems.append(f"{where}.basis: must be a string")
            basis = ""
        standards: dict[str, dict[str, float]] = {}
        for key, table in entry.items():
            if key in ("effective", "basis"):
                continue
            if key not in DEDUCTION_FIELDS:
                problems.append(f"{where}.{key}: unknown deduction")
                continue
            if not isinstance(table, dict):
                problems.append(f"{where}.{key}: must be a table")
                continue
            figures: dict[str, float] = {}
            for name in DEDUCTION_FIELDS[key]:
                value = table.get(name)
                if not _positive_number(value):
                    problems.append(f"{where}.{key}.{name}: must be a positive number")
                else:
                    figures[name] = float(value)  # type: ignore[arg-type]  # checked just above
            problems += [
                f"{where}.{key}.{name}: unknown key"
                for name in sorted(set(table) - set(DEDUCTION_FIELDS[key]))
            ]
            if (
                key == "elderly_support"
                and len(figures) == 2
                and figures["per_sibling_cap"] > figures["monthly"]
            ):
                problems.append(f"{where}.elderly_support.per_sibling_cap: must not exceed monthly")
            standards[key] = figures
        if effective is not None:
            periods.append(Period(effective=effective, basis=basis, standards=standards))
    if problems:
        raise SchemaError(problems, path=path)
    return Policy(periods=tuple(periods), ages=ages, path=str(path) if path is not None else None)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate the policy file (default: the packaged ``policy.toml``, or the one in
    ``$MATCHKIT_CONFIG_DIR``)."""
    source: Path | Traversable = Path(path) if path is not None else policy_file()
    shown = str(source)
    try:
        data = tomllib.loads(source.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise SchemaError(["policy file not found"], path=shown) from exc
    except OSError as exc:
        raise SchemaError([f"cannot read policy file ({exc.strerror})"], path=shown) from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SchemaError([f"not valid TOML: {exc}"], path=shown) from exc
    return parse_policy(data, path=shown)
