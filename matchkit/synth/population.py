"""A coherent three-generation population, vectorised with numpy.

Generation 1 couples (born 1936-1972) have generation 2 children; generation 2 people marry each other (never a
sibling) and have generation 3 children. Every person gets a valid GB 11643 ID from a real county code, a name with
realistic surname frequencies (1% Uyghur names with a middle dot), a death date for some, enrolment spells for the
young, an only-child certificate where it applies and yearly medical costs.

Dates are int64 days since 1970-01-01; months are month indices ``year * 12 + month - 1``. ``NO_DATE`` marks "never".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from matchkit.synth import reference as ref
from matchkit.synth.gb11643 import make_ids

NO_DATE = np.int64(10**8)
STAGE_CODES = {"preschool": 1, "compulsory": 2, "high_school": 3, "higher": 4}
STAGE_NAMES = {code: name for name, code in STAGE_CODES.items()}
YEAR_DAYS = 365.25


def days_from_ymd(year: np.ndarray | int, month: np.ndarray | int, day: np.ndarray | int) -> np.ndarray:
    year = np.asarray(year, dtype=np.int64)
    month = np.asarray(month, dtype=np.int64)
    day = np.asarray(day, dtype=np.int64)
    months = ((year - 1970) * 12 + month - 1).astype("datetime64[M]")
    return (months.astype("datetime64[D]") - np.datetime64("1970-01-01", "D")).astype(np.int64) + day - 1


def ymd_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def month_index(days: np.ndarray) -> np.ndarray:
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    return d.astype("datetime64[M]").astype(np.int64) + 1970 * 12


def add_years(days: np.ndarray, years: int) -> np.ndarray:
    """Same calendar day ``years`` later (29 February rolls over to 1 March)."""
    year, month, day = ymd_from_days(days)
    return days_from_ymd(year + years, month, day)


@dataclass
class Population:
    """Column arrays indexed by person number, plus the event and spell tables."""

    tax_year: int
    generation: np.ndarray      # int8: 1, 2, 3 (9 = added for a constructed case)
    male: np.ndarray            # bool
    birth: np.ndarray           # days
    birth_month: np.ndarray     # month index
    county: np.ndarray
    ids: np.ndarray             # U18
    names: np.ndarray           # object (str)
    minority: np.ndarray        # bool
    father: np.ndarray          # int64, -1 = not in population
    mother: np.ndarray
    death: np.ndarray           # days or NO_DATE
    spouse: np.ndarray          # int64, -1
    father_recorded: np.ndarray  # bool: the household extract holds the father-child relation
    mother_recorded: np.ndarray
    only_child_cert: np.ndarray  # bool
    marriages: pd.DataFrame     # husband, wife, married, divorced (days/NO_DATE), recorded (bool)
    spells: pd.DataFrame        # person, stage (code), from_month, to_month (month indices, inclusive)
    medical: pd.DataFrame       # person, year, total_cost, out_of_pocket (one or more rows per person-year)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def birth_ymd(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return ymd_from_days(self.birth)


class _Names:
    """Vectorised name drawing from the reference tables."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.surnames = np.array([s for s, _ in ref.SURNAMES], dtype=object)
        weights = np.array([w for _, w in ref.SURNAMES], dtype=float)
        self.surname_p = weights / weights.sum()
        self.pools = {key: np.array(list(chars), dtype=object) for key, chars in ref.GIVEN_CHARS.items()}

    def surnames_for(self, n: int) -> np.ndarray:
        return self.surnames[self.rng.choice(len(self.surnames), size=n, p=self.surname_p)]

    def given_for(self, birth_year: np.ndarray, male: np.ndarray) -> np.ndarray:
        n = len(birth_year)
        era = np.where(birth_year < 1970, "old", np.where(birth_year < 1995, "mid", "young"))
        single = self.rng.random(n) < np.where(birth_year < 1970, 0.3, np.where(birth_year < 1995, 0.3, 0.12))
        out = np.empty(n, dtype=object)
        for era_name in ("old", "mid", "young"):
            for sex in (0, 1):
                mask = (era == era_name) & (male == bool(sex))
                count = int(mask.sum())
                if not count:
                    continue
                pool = self.pools[(era_name, sex)]
                first = pool[self.rng.integers(0, len(pool), count)]
                second = pool[self.rng.integers(0, len(pool), count)]
                one = single[mask]
                out[mask] = np.where(one, first, first + second)
        return out

    def minority_given(self, male: np.ndarray) -> np.ndarray:
        males = np.array(ref.MINORITY_MALE, dtype=object)
        females = np.array(ref.MINORITY_FEMALE, dtype=object)
        return np.where(male, males[self.rng.integers(0, len(males), len(male))],
                        females[self.rng.integers(0, len(females), len(male))])


def _counties(rng: np.random.Generator, n: int, xinjiang_only: np.ndarray | None = None) -> np.ndarray:
    provinces = list(ref.COUNTIES)
    weights = np.array([ref.PROVINCE_WEIGHTS[p] for p in provinces], dtype=float)
    province = rng.choice(len(provinces), size=n, p=weights / weights.sum())
    out = np.empty(n, dtype=np.int64)
    for index, name in enumerate(provinces):
        mask = province == index
        codes = np.array([code for code, _ in ref.COUNTIES[name]], dtype=np.int64)
        out[mask] = codes[rng.integers(0, len(codes), int(mask.sum()))]
    if xinjiang_only is not None and xinjiang_only.any():
        codes = np.array([code for code, _ in ref.COUNTIES["新疆"]], dtype=np.int64)
        out[xinjiang_only] = codes[rng.integers(0, len(codes), int(xinjiang_only.sum()))]
    return out


def _random_days(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Uniform day in [low, high] (high >= low expected; clipped otherwise)."""
    span = np.maximum(np.asarray(high) - np.asarray(low), 0)
    return np.asarray(low) + (rng.random(len(span)) * (span + 1)).astype(np.int64)


def _children_of_couples(rng: np.random.Generator, married: np.ndarray, end: np.ndarray,
                         counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Birth days of each couple's children: first 10-48 months after marriage, then 18-72 months apart.
    Returns (couple index, birth day) for the children born before ``end`` (the couple's last possible day)."""
    couple = np.repeat(np.arange(len(counts)), counts)
    order = np.arange(len(couple)) - np.repeat(np.cumsum(counts) - counts, counts)
    gaps = np.where(order == 0, rng.integers(300, 1460, len(couple)), rng.integers(540, 2190, len(couple)))
    cumulative = np.cumsum(gaps)
    start_of_couple = np.repeat(np.cumsum(counts) - counts, counts)
    offset = cumulative - np.where(start_of_couple > 0, cumulative[np.maximum(start_of_couple - 1, 0)], 0)
    births = married[couple] + offset
    keep = births <= end[couple]
    return couple[keep], births[keep]


def build_population(rng: np.random.Generator, n_families: int, tax_year: int) -> Population:
    year_start = int(days_from_ymd(tax_year, 1, 1))
    year_end = int(days_from_ymd(tax_year, 12, 31))
    names = _Names(rng)

    # --- generation 1 couples -------------------------------------------------------------------------------
    n1 = n_families
    husband_birth_year = np.floor(rng.triangular(1936, 1957, 1973, n1)).astype(np.int64)
    husband_birth = days_from_ymd(husband_birth_year, 1, 1) + rng.integers(0, 365, n1)
    wife_birth = husband_birth - rng.normal(730, 800, n1).astype(np.int64)
    g1_married = np.maximum(add_years(husband_birth, 22), add_years(wife_birth, 20)) + \
        rng.exponential(700, n1).astype(np.int64)
    wife_year = ymd_from_days(wife_birth)[0]
    counts = np.select(
        [wife_year < 1950, wife_year < 1960, wife_year < 1970],
        [rng.choice([1, 2, 3, 4, 5, 6], n1, p=[.05, .15, .3, .25, .15, .1]),
         rng.choice([1, 2, 3, 4], n1, p=[.15, .4, .3, .15]),
         rng.choice([1, 2, 3], n1, p=[.45, .4, .15])],
        rng.choice([1, 2], n1, p=[.82, .18]))
    minority_family = rng.random(n1) < 0.01
    g1_end = np.minimum(add_years(wife_birth, 42), year_end)
    g2_couple, g2_birth = _children_of_couples(rng, g1_married, g1_end, counts)
    n2 = len(g2_birth)

    # person layout: [g1 husbands | g1 wives | g2 | g3]
    h_idx = np.arange(n1)
    w_idx = n1 + np.arange(n1)
    g2_idx = 2 * n1 + np.arange(n2)
    g2_male = rng.random(n2) < 0.515

    # --- generation 2 marriages: pair men and women of similar age from different families -----------------------
    g2_adult = g2_birth <= add_years(np.full(n2, year_end), -22)
    will_marry = g2_adult & (rng.random(n2) < 0.9)
    men = np.flatnonzero(will_marry & g2_male)
    women = np.flatnonzero(will_marry & ~g2_male)
    pairs = min(len(men), len(women))
    men = rng.permutation(men)[:pairs]
    women = rng.permutation(women)[:pairs]
    men = men[np.argsort(g2_birth[men] + rng.normal(-900, 700, pairs), kind="stable")]
    women = women[np.argsort(g2_birth[women] + rng.normal(0, 700, pairs), kind="stable")]
    not_siblings = g2_couple[men] != g2_couple[women]
    men, women = men[not_siblings], women[not_siblings]
    pairs = len(men)
    g2_married = np.maximum(add_years(g2_birth[men], 22), add_years(g2_birth[women], 20)) + \
        rng.exponential(900, pairs).astype(np.int64)
    ok = g2_married <= year_end
    men, women, g2_married = men[ok], women[ok], g2_married[ok]
    pairs = len(men)
    divorced = np.where(rng.random(pairs) < 0.1,
                        g2_married + rng.integers(700, 7000, pairs), NO_DATE)
    divorced = np.where(divorced > year_end, NO_DATE, divorced)

    # --- generation 3 -----------------------------------------------------------------------------------------
    g2_wife_year = ymd_from_days(g2_birth[women])[0]
    g3_counts = np.select(
        [g2_wife_year < 1975, g2_wife_year < 1990],
        [rng.choice([0, 1, 2], pairs, p=[.05, .75, .2]), rng.choice([0, 1, 2, 3], pairs, p=[.05, .5, .38, .07])],
        rng.choice([0, 1, 2], pairs, p=[.2, .5, .3]))
    g3_end = np.minimum(np.minimum(add_years(g2_birth[women], 42), year_end), divorced)
    g3_couple, g3_birth = _children_of_couples(rng, g2_married, g3_end, g3_counts)
    n3 = len(g3_birth)
    g3_idx = 2 * n1 + n2 + np.arange(n3)
    g3_male = rng.random(n3) < 0.515

    n = 2 * n1 + n2 + n3
    generation = np.concatenate([np.ones(2 * n1), np.full(n2, 2), np.full(n3, 3)]).astype(np.int8)
    male = np.concatenate([np.ones(n1, bool), np.zeros(n1, bool), g2_male, g3_male])
    birth = np.concatenate([husband_birth, wife_birth, g2_birth, g3_birth]).astype(np.int64)
    father = np.full(n, -1, dtype=np.int64)
    mother = np.full(n, -1, dtype=np.int64)
    father[g2_idx] = h_idx[g2_couple]
    mother[g2_idx] = w_idx[g2_couple]
    father[g3_idx] = g2_idx[men[g3_couple]]
    mother[g3_idx] = g2_idx[women[g3_couple]]
    spouse = np.full(n, -1, dtype=np.int64)
    spouse[h_idx], spouse[w_idx] = w_idx, h_idx
    spouse[g2_idx[men]], spouse[g2_idx[women]] = g2_idx[women], g2_idx[men]

    # --- minority and counties ----------------------------------------------------------------------------------
    minority = np.zeros(n, dtype=bool)
    minority[h_idx] = minority_family
    minority[w_idx] = minority_family
    minority[g2_idx] = minority_family[g2_couple]
    minority[g3_idx] = minority[father[g3_idx]]
    county = _counties(rng, n, minority)
    moved = rng.random(n) < 0.25
    for idx in (g2_idx, g3_idx):  # parents' county first, so children inherit a settled value
        stay = idx[~moved[idx]]
        county[stay] = county[father[stay]]
    hmt = np.flatnonzero((generation == 2) & ~minority & (rng.random(n) < 0.002))
    county[hmt] = np.array(ref.HMT_RESIDENCE_COUNTIES)[rng.integers(0, 2, len(hmt))]

    # --- names --------------------------------------------------------------------------------------------------
    birth_year = ymd_from_days(birth)[0]
    surname = names.surnames_for(n)
    for idx in (g2_idx, g3_idx):
        keep_father = rng.random(len(idx)) < (1.0 if idx is g2_idx else 0.95)
        parent = np.where(keep_father, father[idx], mother[idx])
        surname[idx] = surname[parent]
    given = names.given_for(birth_year, male)
    person_names = (surname + given).astype(object)
    own = names.minority_given(male)
    # a Uyghur name is own·father's; generation 1 fathers' names are drawn at random
    father_first = np.where(father >= 0, own[np.maximum(father, 0)], names.minority_given(np.ones(n, bool)))
    person_names[minority] = own[minority] + ref.MIDDLE_DOT + father_first[minority]

    # --- deaths -------------------------------------------------------------------------------------------------
    death = np.full(n, NO_DATE, dtype=np.int64)
    age_end = tax_year - birth_year
    p_death = np.where(generation == 1, np.clip((age_end - 55) / 38, 0, 0.95) ** 1.6,
                       np.where(generation == 2, 0.015, 0.002))
    dies = rng.random(n) < p_death
    youngest_child = np.full(n, np.iinfo(np.int64).min)
    for parent_col in (father, mother):
        has = parent_col >= 0
        np.maximum.at(youngest_child, parent_col[has], birth[has])
    low = np.maximum.reduce([np.where(generation == 1, add_years(birth, 55), add_years(birth, 30)),
                             np.full(n, int(days_from_ymd(1995, 1, 1))), youngest_child + 1])
    low = np.where(generation == 3, birth + 30, low)
    dies &= low <= year_end
    death[dies] = _random_days(rng, low[dies], np.full(int(dies.sum()), year_end))

    # --- marriages table ----------------------------------------------------------------------------------------
    all_husbands = np.concatenate([h_idx, g2_idx[men]])
    all_wives = np.concatenate([w_idx, g2_idx[women]])
    married_days = np.concatenate([g1_married, g2_married])
    divorced_days = np.concatenate([np.full(n1, NO_DATE), divorced])
    first_death = np.minimum(death[all_husbands], death[all_wives])
    divorced_days = np.where(divorced_days >= first_death, NO_DATE, divorced_days)
    recorded = (married_days >= days_from_ymd(1990, 1, 1)) | (rng.random(len(married_days)) < 0.6)
    marriages = pd.DataFrame({"husband": all_husbands, "wife": all_wives, "married": married_days,
                              "divorced": divorced_days, "recorded": recorded})
    divorced_people = np.concatenate([all_husbands, all_wives])[np.tile(divorced_days < NO_DATE, 2)]
    spouse[divorced_people] = -1  # no longer a spouse; the marriage table keeps the history

    # --- IDs: (county, birth date, sequence) unique; 17th digit odd for men ---------------------------------------
    y, m, d = ymd_from_days(birth)
    yyyymmdd = y * 10000 + m * 100 + d
    seq = rng.integers(0, 500, n) * 2 + male.astype(np.int64)
    for _ in range(50):
        key = county * 10**11 + yyyymmdd * 1000 + seq
        _, first = np.unique(key, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        seq[dup] = rng.integers(0, 500, int(dup.sum())) * 2 + male[dup].astype(np.int64)
    ids = make_ids(county, yyyymmdd, seq)

    # --- household relations recorded ---------------------------------------------------------------------------
    adult = age_end >= 18
    father_recorded = (father >= 0) & ((rng.random(n) < 0.97) | ~adult)
    mother_recorded = (mother >= 0) & ((rng.random(n) < 0.97) | ~adult)

    # --- only-child certificates --------------------------------------------------------------------------------
    sibling_count = np.zeros(n, dtype=np.int64)
    family_key = np.where(mother >= 0, mother, -1)
    has_mother = family_key >= 0
    per_mother = np.bincount(family_key[has_mother], minlength=n)
    sibling_count[has_mother] = per_mother[family_key[has_mother]]
    only_child_cert = (sibling_count == 1) & (birth_year >= 1972) & (rng.random(n) < 0.9)

    population = Population(
        tax_year=tax_year, generation=generation, male=male, birth=birth, birth_month=month_index(birth),
        county=county, ids=ids, names=person_names, minority=minority, father=father, mother=mother,
        death=death, spouse=spouse, father_recorded=father_recorded, mother_recorded=mother_recorded,
        only_child_cert=only_child_cert, marriages=marriages,
        spells=pd.DataFrame(), medical=pd.DataFrame())
    population.spells = _enrolment_spells(rng, population, year_start)
    population.medical = _medical_costs(rng, population)
    return population


def _enrolment_spells(rng: np.random.Generator, pop: Population, year_start: int) -> pd.DataFrame:
    """Kindergarten (some), primary + junior (compulsory), high school (most), higher (about half of those).

    Continuing spells end in August (学籍 kept over the summer), terminal ones in June; dropouts leave in any month.
    Spells starting after December of the tax year are not generated (the extract is taken after the year).
    """
    tax_year = pop.tax_year
    last_month = tax_year * 12 + 11
    people = np.flatnonzero((pop.birth_month >= (tax_year - 27) * 12) & (pop.birth_month + 36 <= last_month))
    k = len(people)
    by, bm, _ = ymd_from_days(pop.birth[people])
    start_year = by + 6 + (bm >= 9) + (rng.random(k) < 0.06)
    sep = start_year * 12 + 8  # September of the first school year

    def month(year_offset: np.ndarray | int, month_of_year: int) -> np.ndarray:
        return sep + np.asarray(year_offset) * 12 + (month_of_year - 9)

    goes_high = rng.random(k) < 0.7
    goes_higher = goes_high & (rng.random(k) < 0.6)
    gap_year = goes_higher & (rng.random(k) < 0.07)
    higher_years = np.where(rng.random(k) < 0.72, 4, 3)
    drop_compulsory = rng.random(k) < 0.01
    drop_high = goes_high & (rng.random(k) < 0.03)
    drop_higher = goes_higher & (rng.random(k) < 0.03)

    rows: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = []
    kinder = rng.random(k) < 0.5
    rows.append((kinder, 1, month(-3, 9), month(0, 8)))
    primary_to = np.where(drop_compulsory, month(0, 9) + rng.integers(6, 70, k), month(6, 8))
    rows.append((np.ones(k, bool), 2, month(0, 9), primary_to))
    junior_to = np.where(goes_high, month(9, 8), month(9, 6))
    rows.append((~drop_compulsory, 2, month(6, 9), junior_to))
    high_to = np.where(drop_high, month(9, 9) + rng.integers(3, 30, k),
                       np.where(goes_higher & ~gap_year, month(12, 8), month(12, 6)))
    rows.append((goes_high & ~drop_compulsory, 3, month(9, 9), high_to))
    higher_from = month(12, 9) + gap_year * 12
    higher_to = np.where(drop_higher, higher_from + rng.integers(3, 30, k),
                         higher_from + higher_years * 12 - 3)
    rows.append((goes_higher & ~drop_high & ~drop_compulsory, 4, higher_from, higher_to))

    death_month = np.where(pop.death[people] < NO_DATE, month_index(np.minimum(pop.death[people], 10**6)),
                           10**7)
    frames = []
    for mask, stage, start, end in rows:
        keep = mask & (start <= last_month) & (start <= death_month)
        frames.append(pd.DataFrame({"person": people[keep], "stage": np.int8(stage),
                                    "from_month": start[keep],
                                    "to_month": np.minimum(end[keep], death_month[keep])}))
    spells = pd.concat(frames, ignore_index=True)
    return spells.sort_values(["person", "from_month"], kind="stable").reset_index(drop=True)


def _medical_costs(rng: np.random.Generator, pop: Population) -> pd.DataFrame:
    """Rows for the tax year and the year before: most costs small, a few above 15,000, some above 95,000."""
    frames = []
    for year in (pop.tax_year - 1, pop.tax_year):
        start = int(days_from_ymd(year, 1, 1))
        end = int(days_from_ymd(year, 12, 31))
        alive = (pop.death >= start) & (pop.birth <= end)
        age = year - ymd_from_days(pop.birth)[0]
        p_row = np.where(age >= 60, 0.75, np.where(age < 18, 0.35, 0.4))
        people = np.flatnonzero(alive & (rng.random(len(pop)) < p_row))
        k = len(people)
        mu = np.where(age[people] >= 60, 7.6, 6.6)
        oop = np.exp(rng.normal(mu, 1.3))
        catastrophic = rng.random(k) < 0.003
        oop = np.where(catastrophic, rng.uniform(95_000, 300_000, k), oop)
        oop = np.round(np.maximum(oop, 20.0), 2)
        total = np.round(oop / rng.uniform(0.25, 0.6, k), 2)
        frames.append(pd.DataFrame({"person": people, "year": year, "total_cost": total, "out_of_pocket": oop}))
    medical = pd.concat(frames, ignore_index=True)
    # a few people have two rows for a year (two insurers' settlement batches); verify sums them
    split = rng.random(len(medical)) < 0.08
    part = np.round(rng.uniform(0.2, 0.8, int(split.sum())), 2)
    second = medical[split].copy()
    first_oop = np.round(medical.loc[split, "out_of_pocket"].to_numpy() * part, 2)
    first_total = np.round(medical.loc[split, "total_cost"].to_numpy() * part, 2)
    second["out_of_pocket"] = np.round(second["out_of_pocket"].to_numpy() - first_oop, 2)
    second["total_cost"] = np.round(second["total_cost"].to_numpy() - first_total, 2)
    medical.loc[split, "out_of_pocket"] = first_oop
    medical.loc[split, "total_cost"] = first_total
    medical = pd.concat([medical, second], ignore_index=True)
    return medical.sort_values(["year", "person"], kind="stable").reset_index(drop=True)
