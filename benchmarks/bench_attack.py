"""Attacks on the name encodings (issue 6): re-identification share per configuration, and what hardening costs.

For a synthetic population (``matchkit.synth.population.build_population``, realistic surname frequencies,
era- and sex-dependent given names, birth dates 1928-2024), the names are encoded with a fresh random key (never
printed, never written) in five configurations:

    bloom-plain               BloomEncoder(k_name, "name", 512, 16), unsalted (a naive CLK-style field encoding)
    bloom-salt-year           salted by the birth year
    bloom-salt-dob            salted by the birth date YYYYMMDD
    bloom-salt-dob+balanced   that, balanced (filter + complement, keyed permutation; benchmarks/attacks.py)
    bloom-salt-dob+diffusion  that, diffused (512 output bits, each the XOR of 8 keyed input bits; attacks.py)
    mk1-name_fz               the released mk1 name tokens, salted by the birth date, beside the dob_tok column

and attacked with ``benchmarks/attacks.py`` by an attacker who knows the population's exact name frequency table
(``global``), or that table per birth year (``year``, a stronger attacker: claims files show the birth year-month).
Salted files are attacked per salt group, assuming the attacker sees the groups (the dob_tok column groups records
by birth date; a clear birth year-month groups them by year).

Costs: linkage accuracy on ``--link-people`` people against a noisy copy (``matchkit.synth.noise.Noise`` at level 1
with homophones, plus 2 % other-character typos, 1 % dropped given-name characters and 2 % birth-date errors):
recall of true pairs with Dice >= 0.8 (Bloom) or a shared exact-or-pinyin token (mk1), and the false-match rate
over random pairs (and over random pairs born in the same year, what a year-blocked comparison sees). Speed:
records/s to encode all names in one process (50,000-record chunks, as the hash pipeline's blocks).

Sensitivity: how many people share one salt value depends on the file (about 30 per birth date for 1M people of
all ages; a 1M-pupil extract of 20 birth cohorts has ~140; a national one thousands). ``--group-sizes`` re-runs the
date-salted configurations with each birth year's dates thinned to about N people per date (same names, same
per-year tables) and the per-year attacker.

Usage: python benchmarks/bench_attack.py [--people 1000000] [--seed 7] [--link-people 20000]
                                         [--knowledge global year] [--configs ...] [--group-sizes 100 300 1000]
                                         [--encode-only] [--workdir benchmarks/work]
Prints a table and writes it as JSON to WORKDIR/attack/. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import attacks  # benchmarks/ is not a package: found through sys.path

CONFIGS = ("bloom-plain", "bloom-salt-year", "bloom-salt-dob", "bloom-salt-dob+balanced", "bloom-salt-dob+diffusion",
           "mk1-name_fz")
DATE_SALTED = ("bloom-salt-dob", "bloom-salt-dob+diffusion", "mk1-name_fz")
BLOOM_BITS = 512
BLOOM_K = 16
CHUNK = 50_000
DICE_THRESHOLD = 0.8
EXTRA_THRESHOLDS = {"bloom-salt-dob+diffusion": (0.8, 0.7)}  # diffusion spreads Dice: also where recall recovers
PEOPLE_PER_FAMILY = 5.5  # build_population makes ~5.9 people per generation-1 couple; a margin, then subsample


# --- the population -------------------------------------------------------------------------------------------------
@dataclass
class People:
    """Names (normalised) and birth dates of the people whose names are encoded."""

    names: np.ndarray  # object: normalised name per person
    name_ids: np.ndarray  # index into ``table.names``
    birth: np.ndarray  # int64 YYYYMMDD
    table: attacks.NameTable

    @property
    def year(self) -> np.ndarray:
        return self.birth // 10000

    def __len__(self) -> int:
        return len(self.names)


def make_people(count: int, seed: int) -> People:
    """``count`` people drawn without replacement from a synthetic population a little larger than that."""
    from matchkit.encode.fields import normalize_name
    from matchkit.synth.population import build_population, ymd_from_days

    rng = np.random.default_rng(seed)
    families = max(60, int(count / PEOPLE_PER_FAMILY) + 50)
    population = build_population(rng, families, 2024)
    while len(population) < count:
        families = int(families * 1.2)
        population = build_population(rng, families, 2024)
    chosen = np.sort(rng.choice(len(population), count, replace=False))
    raw = population.names[chosen]
    year, month, day = ymd_from_days(population.birth[chosen])
    codes, uniques = pd.factorize(raw)
    normalised = np.array([normalize_name(name)[0] for name in uniques], dtype=object)
    names = normalised[codes]
    name_ids, distinct = pd.factorize(names)
    birth = (year * 10000 + month * 100 + day).astype(np.int64)
    table = attacks.NameTable.build(name_ids.astype(np.int64), np.asarray(distinct, dtype=object), birth // 10000)
    return People(names=names, name_ids=name_ids.astype(np.int64), birth=birth, table=table)


# --- encodings ------------------------------------------------------------------------------------------------------
@dataclass
class Encoded:
    """One configuration's encoding of every name, with what the attacker can group records by."""

    config: str
    seconds: float
    groups: np.ndarray  # visible group per record: 0 (none), the birth year, or the birth date
    group_kind: str  # "none", "year" or "date"
    packed: np.ndarray | None = None  # Bloom filters, (n, bytes)
    tokens: np.ndarray | None = None  # mk1 name tokens, flat
    token_counts: np.ndarray | None = None


def bloom_salts(config: str, birth: np.ndarray) -> list[str] | None:
    """The salt strings the linkage encoder uses: ``date_of_birth`` canonical YYYYMMDD, or its first 4 chars."""
    if config == "bloom-plain":
        return None
    text = pd.Series(birth).astype(str)
    return (text.str[:4] if config == "bloom-salt-year" else text).tolist()


def encode_bloom(key: bytes, names: np.ndarray, salts: list[str] | None) -> np.ndarray:
    """Field-level Bloom filters in 50,000-record chunks (one call per block, as ``LinkTableEncoder`` is used)."""
    from matchkit.encode.fields import BloomEncoder

    encoder = BloomEncoder(key, "name", BLOOM_BITS, BLOOM_K)
    out = np.empty((len(names), BLOOM_BITS // 8), dtype=np.uint8)
    values = names.tolist()
    for start in range(0, len(values), CHUNK):
        end = start + CHUNK
        out[start:end] = encoder.encode(values[start:end], None if salts is None else salts[start:end])
    return out


def encode_mk1(encoder: Any, names: np.ndarray, birth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mk1 name tokens salted by birth date, and the dob_tok column, as ``TableEncoder`` computes them (variants
    and digests once per distinct name, AES tokens for all records in one call per chunk)."""
    from matchkit.encode.person import name_variants
    from matchkit.normalize.names import name_pinyin

    codes, uniques = pd.factorize(names)
    digests = [encoder.name_digests(name_variants(name, name_pinyin(name))) for name in uniques]
    token_parts, count_parts = [], []
    for start in range(0, len(names), CHUNK):
        rows = [digests[code] for code in codes[start : start + CHUNK].tolist()]
        tokens, counts = encoder.name_fuzzy_arrays(rows, birth[start : start + CHUNK])
        token_parts.append(tokens)
        count_parts.append(counts)
    dates, date_codes = np.unique(birth, return_inverse=True)
    dob_tokens = np.array([encoder.dob_token(int(date)) for date in dates], dtype=object)[date_codes]
    return np.concatenate(token_parts), np.concatenate(count_parts), dob_tokens


def harden(config: str, packed: np.ndarray, encoder: Any) -> np.ndarray:
    """The hardening step named after the ``+`` of a configuration, keyed by its own sub-key."""
    step = config.partition("+")[2]
    if step == "balanced":
        return attacks.balance(packed, encoder.subkey("field:name:balance"))
    if step == "diffusion":
        return attacks.diffuse(packed, encoder.subkey("field:name:diffusion"))
    raise ValueError(f"unknown hardening step {step!r}")


def encode_all(people: People, key: Any, configs: tuple[str, ...], log: Callable[[str], None]) -> dict[str, Encoded]:
    from matchkit.encode.person import Encoder
    from matchkit.security.keys import DEFAULT_PURPOSE

    encoder = Encoder(key, DEFAULT_PURPOSE)
    bloom_key = encoder.subkey("field:name:bloom")
    out: dict[str, Encoded] = {}
    dob_packed: np.ndarray | None = None
    dob_seconds = 0.0
    for config in configs:
        started = time.perf_counter()
        if config == "mk1-name_fz":
            tokens, counts, dob_tokens = encode_mk1(Encoder(key, DEFAULT_PURPOSE), people.names, people.birth)
            seconds = time.perf_counter() - started
            # the attacker groups by the dob_tok column; the date itself is used only as an opaque group label
            # (and, under "year" knowledge, for its year, which claims show in clear)
            assert len(set(dob_tokens.tolist())) == len(np.unique(people.birth))
            out[config] = Encoded(config, seconds, people.birth, "date", tokens=tokens, token_counts=counts)
        elif config.startswith("bloom-salt-dob+"):
            if dob_packed is None:
                dob_packed = encode_bloom(bloom_key, people.names, bloom_salts("bloom-salt-dob", people.birth))
                dob_seconds = time.perf_counter() - started
                started = time.perf_counter()
            packed = harden(config, dob_packed, encoder)
            seconds = dob_seconds + time.perf_counter() - started
            out[config] = Encoded(config, seconds, people.birth, "date", packed=packed)
        else:
            packed = encode_bloom(bloom_key, people.names, bloom_salts(config, people.birth))
            seconds = time.perf_counter() - started
            if config == "bloom-salt-dob":
                dob_packed, dob_seconds = packed, seconds
            groups = {"bloom-plain": np.zeros(len(people), np.int64), "bloom-salt-year": people.year,
                      "bloom-salt-dob": people.birth}[config]
            kind = {"bloom-plain": "none", "bloom-salt-year": "year", "bloom-salt-dob": "date"}[config]
            out[config] = Encoded(config, seconds, groups, kind, packed=packed)
        log(f"encoded {config}: {out[config].seconds:.1f} s, {len(people) / out[config].seconds:,.0f} records/s")
    return out


# --- attacks --------------------------------------------------------------------------------------------------------
@dataclass
class AttackRow:
    config: str
    knowledge: str
    attack: str
    reidentified: float
    guessed: float
    precision: float
    seconds: float
    note: str = ""


def knowledge_model(people: People, level: str, group_kind: str) -> attacks.KnowledgeModel:
    """Global table, or the table of each group's birth year; exact where the table describes the group itself."""
    def group_year(group: int) -> int | None:
        return group if group_kind == "year" else group // 10000 if group_kind == "date" else None

    def exact(group: int) -> bool:
        return (group_kind == "none" and level == "global") or (group_kind == "year" and level == "year")

    # the overall table applied to one birth cohort is off by the cohort's naming fashion: allow 25 %
    return attacks.KnowledgeModel(people.table, level, group_year, exact, slack=0.25 if level == "global" else 0.0)


def run_attacks(people: People, encoded: Encoded, level: str, features: attacks.FeatureTable,
                variants: attacks.VariantTable | None, log: Callable[[str], None]) -> list[AttackRow]:
    """Every attack that applies to one configuration under one knowledge level."""
    truth = people.name_ids
    model = knowledge_model(people, level, encoded.group_kind)
    rows: list[AttackRow] = []

    def record(attack: str, guesses: np.ndarray, seconds: float, note: str = "") -> None:
        outcome = attacks.score(guesses, truth)
        rows.append(AttackRow(encoded.config, level, attack, outcome.reidentified, outcome.guessed_share,
                              outcome.precision, seconds, note))
        log(f"  {encoded.config} [{level}] {attack}: re-identified {100 * outcome.reidentified:.3f} % "
            f"(guessed {100 * outcome.guessed_share:.2f} %, precision {100 * outcome.precision:.1f} %) "
            f"{seconds:.0f} s {note}")

    if encoded.packed is not None:
        packed = encoded.packed
        note = ""
        if encoded.config.endswith("+balanced"):
            started = time.perf_counter()
            packed, pairs = attacks.unbalance(packed)
            note = f"unbalanced: {pairs} complementary column pairs found in {time.perf_counter() - started:.0f} s"
        started = time.perf_counter()
        frequency, anchored = attacks.frequency_attack(attacks.row_codes(packed), encoded.groups, model,
                                                       classes=features.encoding_classes())
        record("frequency", frequency, time.perf_counter() - started)
        started = time.perf_counter()
        anchors = np.where(anchored, frequency, attacks.NO_GUESS)
        pattern, summary = attacks.bloom_pattern_attack(packed, encoded.groups, features, model,
                                                        attacks.PatternParams(), anchors=anchors, progress=log)
        summary_note = (f"{summary['groups_attacked']:,} groups mined, "
                        f"{summary['features_per_group']:.1f} features learnt per group")
        record("pattern mining", pattern, time.perf_counter() - started, "; ".join(x for x in (note, summary_note)
                                                                                   if x))
        record("combined", attacks.combine(pattern, frequency), 0.0)  # pattern mining is the more precise
    else:
        assert encoded.tokens is not None and encoded.token_counts is not None and variants is not None
        started = time.perf_counter()
        first = np.cumsum(encoded.token_counts) - encoded.token_counts
        exact_tokens = encoded.tokens[first]
        frequency, _ = attacks.frequency_attack(exact_tokens, encoded.groups, model)
        record("frequency (exact token)", frequency, time.perf_counter() - started)
        started = time.perf_counter()
        structural = attacks.mk1_structural_attack(encoded.tokens, encoded.token_counts, encoded.groups, variants,
                                                   model)
        record("token structure (MAP)", structural, time.perf_counter() - started)
        record("combined", attacks.combine(frequency, structural), 0.0)  # token structure guesses everyone
    return rows


def baselines(people: People) -> dict[str, float]:
    """Guess the most frequent name for everyone (overall, or of each person's birth year)."""
    table = people.table
    per_year = sum(float(counts.max()) for _, counts in table.year_counts.values())
    return {"global": float(table.counts.max()) / len(people), "year": per_year / len(people)}


def with_people_per_date(people: People, per_date: int, seed: int) -> People:
    """The same people and names, each birth year's dates thinned so that about ``per_date`` people share each birth
    date: what a file drawn from few birth cohorts (a school extract) or a larger file looks like to an attacker
    who groups by the date token. Name tables (overall, per year) are unchanged."""
    rng = np.random.default_rng([seed, per_date])
    year = people.year
    years, year_of_person, per_year = np.unique(year, return_inverse=True, return_counts=True)
    dates_per_year = np.maximum(1, np.rint(per_year / per_date)).astype(np.int64)
    slot = (rng.random(len(people)) * dates_per_year[year_of_person]).astype(np.int64)
    spacing = np.maximum(1, 365 // dates_per_year[year_of_person])
    first_day = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    day = first_day[year_of_person] + slot * spacing
    stamp = pd.DatetimeIndex(day.astype("datetime64[ns]"))
    birth = (stamp.year * 10000 + stamp.month * 100 + stamp.day).to_numpy().astype(np.int64)
    return People(names=people.names, name_ids=people.name_ids, birth=birth, table=people.table)


def group_size_sensitivity(people: People, key: Any, sizes: tuple[int, ...], seed: int,
                           features: attacks.FeatureTable, variants: attacks.VariantTable,
                           log: Callable[[str], None]) -> list[AttackRow]:
    """The date-salted configurations attacked with per-year tables when more people share each birth date."""
    rows: list[AttackRow] = []
    for per_date in sizes:
        thinned = with_people_per_date(people, per_date, seed)
        median = float(np.median(np.unique(thinned.birth, return_counts=True)[1]))
        log(f"~{per_date} people per birth date (median {median:.0f}):")
        encoded = encode_all(thinned, key, DATE_SALTED, log=lambda message: None)
        for config in DATE_SALTED:
            for row in run_attacks(thinned, encoded[config], "year", features, variants, log):
                row.note = f"median {median:.0f} people per birth date" + (f"; {row.note}" if row.note else "")
                row.config = f"{config} @{per_date}/date"
                rows.append(row)
    return rows


# --- linkage cost ---------------------------------------------------------------------------------------------------
@dataclass
class LinkageRow:
    config: str
    recall: float
    false_match_random: float
    false_match_same_year: float
    pairs: int
    random_pairs: int


def noisy_copy(names: np.ndarray, birth: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Names as another agency typed them, normalised; 2 % of birth dates wrong (a day off, day and month
    swapped, or the year a digit off)."""
    from matchkit.encode.fields import normalize_name
    from matchkit.synth import reference as ref
    from matchkit.synth.noise import Noise

    noisy = Noise(rng, 1.0).names(names.astype(object), homophone=True)
    pool = list(dict.fromkeys("".join(ref.GIVEN_CHARS.values())))
    for index in np.flatnonzero(rng.random(len(noisy)) < 0.02).tolist():
        name = noisy[index]
        if len(name) >= 2 and ref.MIDDLE_DOT not in name:
            at = int(rng.integers(1, len(name)))
            noisy[index] = name[:at] + pool[int(rng.integers(0, len(pool)))] + name[at + 1 :]
    for index in np.flatnonzero(rng.random(len(noisy)) < 0.01).tolist():
        name = noisy[index]
        if len(name) >= 3 and ref.MIDDLE_DOT not in name:
            noisy[index] = name[:-1]
    normalised = np.array([normalize_name(name)[0] for name in noisy], dtype=object)
    birth_out = birth.copy()
    for index in np.flatnonzero(rng.random(len(birth)) < 0.02).tolist():
        year, month, day = birth[index] // 10000, birth[index] // 100 % 100, birth[index] % 100
        kind = int(rng.integers(0, 3))
        if kind == 0:
            day = day + 1 if day < 28 else day - 1
        elif kind == 1 and day <= 12 and day != month:
            month, day = day, month
        else:
            year = year + (1 if rng.random() < 0.5 else -1)
        birth_out[index] = year * 10000 + month * 100 + day
    return normalised, birth_out


def _dice(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    both = np.bitwise_count(left & right).sum(axis=1, dtype=np.int64)
    total = np.bitwise_count(left).sum(axis=1, dtype=np.int64) + np.bitwise_count(right).sum(axis=1, dtype=np.int64)
    return np.divide(2 * both, total, out=np.zeros(len(both)), where=total > 0)


def _random_pairs(birth: np.ndarray, count: int, rng: np.random.Generator) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                                      tuple[np.ndarray, np.ndarray]]:
    """Random pairs of different people; and random pairs of different people born in the same year."""
    n = len(birth)
    left = rng.integers(0, n, count)
    right = (left + rng.integers(1, n, count)) % n
    year = birth // 10000
    order = np.argsort(year, kind="stable")
    sorted_years = year[order]
    lo = np.searchsorted(sorted_years, sorted_years, side="left")
    hi = np.searchsorted(sorted_years, sorted_years, side="right")
    pick = rng.integers(0, n, count)
    span = hi[pick] - lo[pick]
    usable = span > 1
    pick = pick[usable]
    other = lo[pick] + (pick - lo[pick] + rng.integers(1, np.maximum(span[usable], 2))) % span[usable]
    return (left, right), (order[pick], order[other])


Agreement = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (left rows, right rows) -> pair agrees


def _token_agreement(left: tuple[np.ndarray, np.ndarray], right: tuple[np.ndarray, np.ndarray]) -> Agreement:
    """mk1: the pair shares its exact-name or its full-pinyin token (first and second token of each record)."""
    def agree(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return (left[0][i] == right[0][j]) | (left[1][i] == right[1][j])
    return agree


def _dice_agreement(left: np.ndarray, right: np.ndarray, threshold: float) -> Agreement:
    def agree(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return _dice(left[i], right[j]) >= threshold
    return agree


def _first_tokens(tokens: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first = np.cumsum(counts) - counts
    return tokens[first], tokens[first + 1]


def linkage_costs(people: People, key: Any, count: int, seed: int, configs: tuple[str, ...],
                  random_pairs: int = 1_000_000) -> list[LinkageRow]:
    from matchkit.encode.person import Encoder
    from matchkit.security.keys import DEFAULT_PURPOSE

    rng = np.random.default_rng([seed, 0x6C696E6B])
    chosen = rng.choice(len(people), min(count, len(people)), replace=False)
    names, birth = people.names[chosen], people.birth[chosen]
    noisy_names, noisy_birth = noisy_copy(names, birth, rng)
    (left, right), (same_left, same_right) = _random_pairs(birth, random_pairs, rng)
    encoder = Encoder(key, DEFAULT_PURPOSE)
    bloom_key = encoder.subkey("field:name:bloom")
    rows: list[LinkageRow] = []
    for config in configs:
        agreements: list[tuple[str, Agreement]] = []
        if config == "mk1-name_fz":
            a_tokens, a_counts, _ = encode_mk1(encoder, names, birth)
            b_tokens, b_counts, _ = encode_mk1(encoder, noisy_names, noisy_birth)
            agreements.append((config, _token_agreement(_first_tokens(a_tokens, a_counts),
                                                        _first_tokens(b_tokens, b_counts))))
        else:
            base = config.partition("+")[0]
            a_packed = encode_bloom(bloom_key, names, bloom_salts(base, birth))
            b_packed = encode_bloom(bloom_key, noisy_names, bloom_salts(base, noisy_birth))
            if "+" in config:
                a_packed, b_packed = harden(config, a_packed, encoder), harden(config, b_packed, encoder)
            for threshold in EXTRA_THRESHOLDS.get(config, (DICE_THRESHOLD,)):
                label = config if threshold == DICE_THRESHOLD else f"{config} @Dice {threshold}"
                agreements.append((label, _dice_agreement(a_packed, b_packed, threshold)))
        same = np.arange(len(names))
        for label, agree in agreements:
            rows.append(LinkageRow(label, float(agree(same, same).mean()), float(agree(left, right).mean()),
                                   float(agree(same_left, same_right).mean()), len(names), random_pairs))
    return rows


# --- report ---------------------------------------------------------------------------------------------------------
@dataclass
class Report:
    people: int
    seed: int
    machine: str
    distinct_names: int
    baselines: dict[str, float]
    normalise_seconds: float
    encode_seconds: dict[str, float] = field(default_factory=dict)
    attacks: list[AttackRow] = field(default_factory=list)
    sensitivity: list[AttackRow] = field(default_factory=list)
    linkage: list[LinkageRow] = field(default_factory=list)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def format_report(report: Report) -> str:
    baseline = (f"baseline (most frequent name for everyone): {100 * report.baselines['global']:.3f} %; "
                f"(most frequent name of each birth year): {100 * report.baselines['year']:.3f} %")
    header = (f"{'config':<36} {'knowledge':<9} {'attack':<24} {'re-identified':>13} {'guessed':>9} "
              f"{'precision':>9} {'seconds':>8}")
    lines = [f"{report.people:,} people, {report.distinct_names:,} distinct names; machine: {report.machine}",
             baseline, "", header]
    for row in report.attacks + report.sensitivity:
        precision = "-" if np.isnan(row.precision) else f"{100 * row.precision:.1f} %"
        lines.append(f"{row.config:<36} {row.knowledge:<9} {row.attack:<24} {100 * row.reidentified:>11.3f} % "
                     f"{100 * row.guessed:>7.2f} % {precision:>9} {row.seconds:>8.0f}")
    lines += ["", f"{'config':<36} {'encode rec/s':>12} {'recall':>8} {'FMR random':>11} {'FMR same year':>14}"]
    for link in report.linkage:
        seconds = report.encode_seconds.get(link.config)
        speed = f"{report.people / seconds:>12,.0f}" if seconds else f"{'':>12}"
        lines.append(f"{link.config:<36} {speed} {100 * link.recall:>7.2f}% "
                     f"{100 * link.false_match_random:>10.4f}% {100 * link.false_match_same_year:>13.4f}%")
    lines.append(f"(normalising the names, shared by all: {report.people / report.normalise_seconds:,.0f} records/s)")
    return "\n".join(lines)


def run(people_count: int, seed: int, link_people: int, levels: tuple[str, ...], configs: tuple[str, ...],
        group_sizes: tuple[int, ...] = (), log: Callable[[str], None] = print, *,
        encode_only: bool = False) -> Report:
    from matchkit.security.keys import new_key

    started = time.perf_counter()
    people = make_people(people_count, seed)
    log(f"population: {len(people):,} people, {len(people.table.names):,} distinct names "
        f"({time.perf_counter() - started:.0f} s)")
    from matchkit.encode.fields import normalize_name

    started = time.perf_counter()
    for name in people.names.tolist()[: min(len(people), 200_000)]:
        normalize_name(name)
    normalise_seconds = (time.perf_counter() - started) * len(people) / min(len(people), 200_000)
    key = new_key()  # random, never printed or written
    report = Report(len(people), seed, machine(), len(people.table.names), baselines(people), normalise_seconds)
    encoded = encode_all(people, key, configs, log)
    report.encode_seconds = {config: encoded[config].seconds for config in configs}
    if encode_only:
        return report
    features = attacks.FeatureTable.build(people.table.names.tolist())
    variants = attacks.VariantTable.build(people.table.names.tolist())
    log(f"attacker's tables: {features.n_features} q-gram features")
    for config in configs:
        for level in levels:
            if encoded[config].group_kind == "none" and level == "year":
                continue  # nothing groups an unsalted file by year; the overall table is already exact
            report.attacks.extend(run_attacks(people, encoded[config], level, features, variants, log))
        encoded[config].packed = None  # free memory early
    encoded.clear()
    report.sensitivity = group_size_sensitivity(people, key, group_sizes, seed, features, variants, log)
    log("linkage costs ...")
    report.linkage = linkage_costs(people, key, link_people, seed, configs)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--link-people", type=int, default=20_000)
    parser.add_argument("--knowledge", nargs="+", choices=("global", "year"), default=["global", "year"])
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--group-sizes", nargs="*", type=int, default=[100, 300, 1000], metavar="N",
                        help="also attack the date-salted configurations with ~N people per birth date")
    parser.add_argument("--encode-only", action="store_true", help="only time the encodings (no attacks, no costs)")
    parser.add_argument("--workdir", default=str(HERE / "work"))
    args = parser.parse_args()
    started = time.perf_counter()
    report = run(args.people, args.seed, args.link_people, tuple(args.knowledge), tuple(args.configs),
                 tuple(args.group_sizes), log=lambda message: print(message, flush=True),
                 encode_only=args.encode_only)
    if args.encode_only:
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
        return
    print()
    print(format_report(report))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"total {time.perf_counter() - started:.0f} s, peak RSS {peak:,.0f} MB")
    out = Path(args.workdir) / "attack"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"results-{args.people}-s{args.seed}.json"
    target.write_text(json.dumps(asdict(report), indent=1, default=float) + "\n")
    print(f"written {target}")


if __name__ == "__main__":
    main()
