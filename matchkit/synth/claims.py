"""Claim lines and their expected outcome, computed from the population by the SPEC §2/§5 rules.

This module is the independent oracle for the verify engine: every line is built as one *scenario* (a legitimate
claim, or one defect) whose expected status, reason set and allowed amount follow directly from the population
truth. Scenarios never share a subject (nor, for elderly support, a taxpayer), so the lines of one scenario cannot
change the outcome of another; the only deliberate interactions are inside a scenario (two parents over 100%,
siblings over the standard, a duplicate after its original).

Policy figures are repeated here on purpose instead of read from ``matchkit/data/``: the oracle must not share a mistake
with the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from matchkit.synth import reference as ref
from matchkit.synth.gb11643 import check_char, excel_damaged
from matchkit.synth.population import (
    NO_DATE,
    STAGE_NAMES,
    Population,
    days_from_ymd,
    month_index,
    ymd_from_days,
)

REASON_ORDER = ("INVALID_SUBJECT_ID", "SUBJECT_NOT_FOUND", "FUZZY_MATCH", "NOT_ENROLLED", "STAGE_MISMATCH",
                "AGE_INELIGIBLE", "SHARE_EXCEEDED", "OVER_CAP", "SUBJECT_DECEASED", "NOT_ONLY_CHILD",
                "SIBLING_CAP_EXCEEDED", "RELATION_UNVERIFIED", "EXPENSE_BELOW_THRESHOLD",
                "AMOUNT_EXCEEDS_EVIDENCE", "DUPLICATE_CLAIM", "SOURCE_MISSING", "AMBIGUOUS_MATCH",
                "NAME_MISMATCH")

# Defect classes, their share of the defective lines, and lines per constructed case.
DEFECT_WEIGHTS: dict[str, float] = {
    "invalid_subject_id": 0.07, "subject_not_found": 0.05, "fuzzy_match": 0.10, "not_enrolled": 0.07,
    "stage_mismatch": 0.05, "age_ineligible": 0.08, "share_exceeded": 0.06, "over_cap": 0.05,
    "subject_deceased": 0.05, "not_only_child": 0.06, "sibling_cap_exceeded": 0.05, "relation_unverified": 0.06,
    "expense_below_threshold": 0.04, "amount_exceeds_evidence": 0.04, "duplicate_claim": 0.07,
    "source_missing": 0.12, "ambiguous_match": 0.02,
    # issue 16: a subject ID mistyped into another real person's ID (same county and birth date, one sequence digit,
    # check character recomputed); and a right ID whose name has a one-character typo
    "id_of_another_person": 0.05, "subject_name_typo": 0.01,
}
LINES_PER_CASE = {"share_exceeded": 2, "sibling_cap_exceeded": 3}
LEGIT_WEIGHTS = {"children_education": 0.52, "elderly_support": 0.36, "infant_care": 0.08, "serious_illness": 0.04}

SERIOUS_THRESHOLD = 15_000.0
SERIOUS_CAP = 80_000.0


def children_standard(year: int) -> float:
    return 2000.0 if year >= 2023 else 1000.0


def infant_standard(year: int) -> float:
    return 2000.0 if year >= 2023 else (1000.0 if year == 2022 else 0.0)


def elderly_standards(year: int) -> tuple[float, float]:
    """(standard per parent-month for an only child / all siblings together, per-sibling cap)."""
    return (3000.0, 1500.0) if year >= 2023 else (2000.0, 1000.0)


@dataclass
class Lines:
    """Claim lines in columns. ``subject`` is a person index or -1 for a person who does not exist."""

    cols: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in Lines.FIELDS})
    FIELDS: ClassVar[tuple[str, ...]] = ("taxpayer", "subject", "deduction", "start", "end", "share", "monthly", "annual", "stage",
              "relation", "only_child", "subject_id_override", "subject_name_override", "subject_birth_override",
              "defect", "scenario", "status", "reasons", "allowed", "verified_months", "after_line",
              "clean_name", "true_id")

    def add(self, **values: Any) -> int:
        for name in self.FIELDS:
            self.cols[name].append(values.get(name))
        return len(self.cols["taxpayer"]) - 1

    def __len__(self) -> int:
        return len(self.cols["taxpayer"])


class ClaimBuilder:
    def __init__(self, pop: Population, rng: np.random.Generator, known: np.ndarray | None = None) -> None:
        self.pop = pop
        # the 17-digit bodies (sorted int64) of every real ID of the whole data set when it is generated in blocks:
        # an ID built here (a typo, a fabricated or added person) must belong to nobody in any block
        self.known = known
        self.rng = rng
        self.year = year = pop.tax_year
        self.first_month = year * 12
        self.last_month = year * 12 + 11
        self.year_start = int(days_from_ymd(year, 1, 1))
        self.year_end = int(days_from_ymd(year, 12, 31))
        n = len(pop)
        self.birth_year = ymd_from_days(pop.birth)[0]
        self.age = year - self.birth_year
        self.alive_all_year = pop.death == NO_DATE
        self.alive_at_start = pop.death >= self.year_start
        self.taxpayer_ok = self.alive_all_year & (self.age >= 22) & (pop.generation != 9)
        self.lines = Lines()
        self.child_used = np.zeros(n, bool)          # children_education and infant_care subjects
        self.parent_used = np.zeros(n, bool)         # elderly_support subjects
        self.elderly_taxpayer_used = np.zeros(n, bool)
        self.patient_used = np.zeros(n, bool)
        self.extra_people: list[dict[str, Any]] = []  # people added for constructed cases (ambiguous twins)
        self.extra_medical: list[tuple[int, int, float, float]] = []  # (person, year, total, out of pocket)
        self.sorted_ids = np.sort(pop.ids)
        self._bodies: tuple[np.ndarray, np.ndarray] | None = None
        self.ce_used: set[tuple[int, str]] = set()  # (taxpayer, kind) of continuing_education lines
        self.new_ids: set[str] = set()
        self.skipped: dict[str, int] = {}
        self._children_index()
        self._stage_matrix()
        self._medical_index()
        self._marriage_index()

    # ---- indices over the population -----------------------------------------------------------------------
    def _children_index(self) -> None:
        pop = self.pop
        n = len(pop)
        parents = np.concatenate([pop.father, pop.mother])
        kids = np.concatenate([np.arange(n), np.arange(n)])
        recorded = np.concatenate([pop.father_recorded, pop.mother_recorded])
        keep = parents >= 0
        parents, kids, recorded = parents[keep], kids[keep], recorded[keep]
        order = np.argsort(parents, kind="stable")
        self.child_list = kids[order]
        self.child_recorded = recorded[order]
        self.child_ptr = np.concatenate([[0], np.cumsum(np.bincount(parents, minlength=n))])

    def children_of(self, person: int) -> list[tuple[int, bool]]:
        lo, hi = self.child_ptr[person], self.child_ptr[person + 1]
        return list(zip(self.child_list[lo:hi].tolist(), self.child_recorded[lo:hi].tolist()))

    def recorded_parents(self, kid: int) -> list[int]:
        pop = self.pop
        out = []
        if pop.father[kid] >= 0 and pop.father_recorded[kid]:
            out.append(int(pop.father[kid]))
        if pop.mother[kid] >= 0 and pop.mother_recorded[kid]:
            out.append(int(pop.mother[kid]))
        return out

    def _stage_matrix(self) -> None:
        """Per child and month of the tax year: 0 none, 1 preschool (age rule), 2-4 the enrolled stage."""
        pop = self.pop
        first, last = self.first_month, self.last_month
        kids = np.flatnonzero((pop.birth_month >= (self.year - 26) * 12) & (pop.birth_month <= last))
        position = np.full(len(pop), -1, dtype=np.int64)
        position[kids] = np.arange(len(kids))
        stage = np.zeros((len(kids), 12), dtype=np.int8)
        spells = pop.spells
        school = spells[(spells["stage"] >= 2) & (spells["from_month"] <= last) & (spells["to_month"] >= first)]
        person = position[school["person"].to_numpy()]
        s_from, s_to = school["from_month"].to_numpy(), school["to_month"].to_numpy()
        s_stage = school["stage"].to_numpy().astype(np.int8)
        for j in range(12):
            covered = (s_from <= first + j) & (s_to >= first + j)
            np.maximum.at(stage[:, j], person[covered], s_stage[covered])
        compulsory = spells[spells["stage"] == 2]
        first_compulsory = np.full(len(pop), 10**7, dtype=np.int64)
        np.minimum.at(first_compulsory, compulsory["person"].to_numpy(), compulsory["from_month"].to_numpy())
        birth_month = pop.birth_month[kids]
        preschool_end = np.where(first_compulsory[kids] < 10**7, first_compulsory[kids], birth_month + 72)
        months = first + np.arange(12)
        preschool = (months[None, :] >= birth_month[:, None] + 36) & (months[None, :] < preschool_end[:, None])
        stage[(stage == 0) & preschool] = 1
        self.kids = kids
        self.kid_position = position
        self.stage = stage

    def _medical_index(self) -> None:
        med = self.pop.medical
        this_year = med[med["year"] == self.year]
        self.out_of_pocket = np.zeros(len(self.pop))
        np.add.at(self.out_of_pocket, this_year["person"].to_numpy(), this_year["out_of_pocket"].to_numpy())
        self.out_of_pocket = np.round(self.out_of_pocket, 2)
        self.has_medical = np.zeros(len(self.pop), bool)
        self.has_medical[this_year["person"].to_numpy()] = True

    def _marriage_index(self) -> None:
        pop = self.pop
        m = pop.marriages
        in_force = ((m["married"] <= self.year_end) & (m["divorced"] >= self.year_start)
                    & (pop.death[m["husband"]] >= self.year_start) & (pop.death[m["wife"]] >= self.year_start)
                    & m["recorded"]).to_numpy()
        self.spouse_in_year = np.full(len(pop), -1, dtype=np.int64)
        h, w = m["husband"].to_numpy()[in_force], m["wife"].to_numpy()[in_force]
        self.spouse_in_year[h] = w
        self.spouse_in_year[w] = h

    # ---- helpers ---------------------------------------------------------------------------------------------
    def runs(self, kid: int) -> list[tuple[int, int, int]]:
        """(stage, first month index, last month index) of each run of one stage in the tax year."""
        row = self.stage[self.kid_position[kid]].tolist()
        out: list[tuple[int, int, int]] = []
        j = 0
        while j < 12:
            if row[j] == 0:
                j += 1
                continue
            k = j
            while k + 1 < 12 and row[k + 1] == row[j]:
                k += 1
            out.append((row[j], self.first_month + j, self.first_month + k))
            j = k + 1
        return out

    def id_exists(self, value: str) -> bool:
        i = np.searchsorted(self.sorted_ids, value)
        if bool(i < len(self.sorted_ids) and self.sorted_ids[i] == value) or value in self.new_ids:
            return True
        if self.known is not None and len(self.known):
            body = int(value[:17])
            j = int(np.searchsorted(self.known, body))
            return j < len(self.known) and int(self.known[j]) == body
        return False

    def typo_id(self, id18: str, *, recompute_check: bool) -> str:
        """One wrong digit or two swapped adjacent digits in the address or sequence part (never the province or
        the date, so a recomputed ID stays valid), not equal to anyone's ID."""
        for _ in range(100):
            if self.rng.random() < 0.5:
                position = int(self.rng.choice([2, 3, 4, 5, 14, 15, 16]))
                digit = str((int(id18[position]) + int(self.rng.integers(1, 10))) % 10)
                body = id18[:position] + digit + id18[position + 1:17]
            else:
                position = int(self.rng.choice([2, 3, 4, 14, 15]))
                if id18[position] == id18[position + 1]:
                    continue
                body = id18[:position] + id18[position + 1] + id18[position] + id18[position + 2:17]
            recomputed = body + check_char(body)
            if not self.id_exists(recomputed):
                self.new_ids.add(recomputed)
                return recomputed if recompute_check else body + id18[17]
        raise RuntimeError("could not construct a typo ID")  # pragma: no cover

    def fabricated_person(self, birth_year_range: tuple[int, int]) -> tuple[str, str, int]:
        """A valid ID, name and birth day that belong to nobody in the population."""
        pop = self.pop
        while True:
            donor = int(self.rng.integers(0, len(pop)))
            county = pop.ids[donor][:6]
            birth = int(days_from_ymd(int(self.rng.integers(*birth_year_range)), 1, 1)) + int(
                self.rng.integers(0, 365))
            y, m, d = (int(v[0]) for v in ymd_from_days(np.array([birth])))
            body = f"{county}{y:04d}{m:02d}{d:02d}{int(self.rng.integers(0, 1000)):03d}"
            value = body + check_char(body)
            if not self.id_exists(value):
                self.new_ids.add(value)
                surname = pop.names[int(self.rng.integers(0, len(pop)))]
                given = pop.names[int(self.rng.integers(0, len(pop)))]
                name = (surname[0] if "\u00b7" not in surname else "王") + (
                    given[-2:] if "\u00b7" not in given else "子健")
                return value, name, birth

    def shuffled(self, candidates: np.ndarray) -> list[int]:
        return self.rng.permutation(candidates).tolist()

    def line(self, **values: Any) -> int:
        reasons = values.get("reasons", ())
        values["reasons"] = ";".join(code for code in REASON_ORDER if code in reasons)
        return self.lines.add(**values)

    def months(self, start: int, end: int) -> int:
        return end - start + 1

    def taxpayer_for_unrelated(self, not_these: set[int], older_than: int | None = None) -> int:
        """A random adult taxpayer outside ``not_these`` (born before ``older_than`` when given)."""
        while True:
            person = int(self.rng.integers(0, len(self.pop)))
            if self.taxpayer_ok[person] and person not in not_these and (
                    older_than is None or self.pop.birth[person] < older_than):
                return person

    # ---- candidate pools -------------------------------------------------------------------------------------
    def kid_pool(self) -> list[int]:
        return self.shuffled(self.kids[self.alive_all_year[self.kids]])

    def parent_pool(self) -> list[int]:
        has_children = np.diff(self.child_ptr) > 0
        return self.shuffled(np.flatnonzero(has_children & (self.pop.generation <= 2)))

    def patient_pool(self) -> list[int]:
        return self.shuffled(np.flatnonzero(self.has_medical & self.alive_at_start))

    def elderly_claimants(self, parent: int) -> list[int]:
        return [kid for kid, recorded in self.children_of(parent)
                if recorded and self.taxpayer_ok[kid] and not self.elderly_taxpayer_used[kid]]

    def elderly_months(self, parent: int) -> tuple[int, int] | None:
        start = max(self.first_month, int(self.pop.birth_month[parent]) + 720)
        return (start, self.last_month) if start <= self.last_month else None

    # ---- legitimate lines ------------------------------------------------------------------------------------
    def legit_children(self, kid: int, *, deduction: str = "children_education", room: int = 10**9) -> int:
        if self.child_used[kid]:
            return 0
        parents = [p for p in self.recorded_parents(kid) if self.taxpayer_ok[p]]
        if not parents:
            return 0
        if deduction == "children_education":
            runs = self.runs(kid)
            standard = children_standard(self.year)
        else:
            standard = infant_standard(self.year)
            bm = int(self.pop.birth_month[kid])
            start, end = max(self.first_month, bm), min(self.last_month, bm + 35)
            runs = [(0, start, end)] if start <= end and standard > 0 else []
        if not runs:
            return 0
        if len(parents) == 2 and self.rng.random() < 0.3:
            claimants = [(parents[0], 0.5), (parents[1], 0.5)]
        else:
            claimants = [(parents[int(self.rng.integers(0, len(parents)))], 1.0)]
        if len(runs) * len(claimants) > room:
            claimants = claimants[:1]
            claimants = [(claimants[0][0], 1.0)]
            if len(runs) > room:
                return 0
        self.child_used[kid] = True
        count = 0
        for stage, start, end in runs:
            for parent, share in claimants:
                monthly = standard * share
                months = self.months(start, end)
                self.line(taxpayer=parent, subject=kid, deduction=deduction, start=start, end=end, share=share,
                          monthly=monthly, stage=STAGE_NAMES.get(stage, ""), relation="child", defect="none",
                          scenario=f"{deduction}_{'split' if share < 1 else 'single'}", status="verified",
                          allowed=monthly * months, verified_months=months)
                count += 1
        return count

    def legit_elderly(self, parent: int, room: int = 10**9) -> int:
        if self.parent_used[parent] or not self.alive_at_start[parent]:
            return 0
        period = self.elderly_months(parent)
        claimants = self.elderly_claimants(parent)
        if period is None or not claimants:
            return 0
        start, end = period
        months = self.months(start, end)
        standard, cap = elderly_standards(self.year)
        certified = [c for c in claimants if self.pop.only_child_cert[c]]
        died = "_parent_died_in_year" if self.pop.death[parent] < NO_DATE else ""
        if certified:
            plan = [(certified[0], standard, True)]
            scenario = "elderly_only_child"
        else:
            k = min(len(claimants), int(self.rng.choice([1, 2, 2, 3])), room)
            if k == 3 and standard / 3 != round(standard / 3):
                k = 2
            amount = cap if k <= 2 else standard / 3
            chosen = self.rng.permutation(claimants)[:k].tolist()
            plan = [(c, amount, False) for c in chosen]
            scenario = f"elderly_shared_{k}"
        self.parent_used[parent] = True
        for taxpayer, amount, only in plan:
            self.elderly_taxpayer_used[taxpayer] = True
            self.line(taxpayer=taxpayer, subject=parent, deduction="elderly_support", start=start, end=end,
                      monthly=amount, relation="parent", only_child=only, defect="none", scenario=scenario + died,
                      status="verified", allowed=amount * months, verified_months=months)
        return len(plan)

    def serious_claimant(self, patient: int) -> tuple[int, str] | None:
        options: list[tuple[int, str]] = []
        minor = self.pop.birth[patient] > days_from_ymd(self.year - 18, 1, 1)
        if minor:
            options = [(p, "child") for p in self.recorded_parents(patient) if self.taxpayer_ok[p]]
        else:
            if self.taxpayer_ok[patient]:
                options.append((patient, "self"))
            spouse = int(self.spouse_in_year[patient])
            if spouse >= 0 and self.taxpayer_ok[spouse] and self.rng.random() < 0.4:
                options = [(spouse, "spouse")]
        if not options:
            return None
        return options[int(self.rng.integers(0, len(options)))]

    def legit_serious(self, patient: int, room: int = 1) -> int:
        x = float(self.out_of_pocket[patient])
        if self.patient_used[patient] or x <= SERIOUS_THRESHOLD:
            return 0
        claimant = self.serious_claimant(patient)
        if claimant is None:
            return 0
        taxpayer, relation = claimant
        allowed = round(min(x - SERIOUS_THRESHOLD, SERIOUS_CAP), 2)
        self.patient_used[patient] = True
        self.line(taxpayer=taxpayer, subject=patient, deduction="serious_illness", annual=allowed,
                  relation=relation, defect="none", scenario=f"serious_illness_{relation}",
                  status="verified", allowed=allowed)
        return 1

    # ---- defects ---------------------------------------------------------------------------------------------
    def single_run_kid(self, kid: int, *, enrolled: bool = True, full_year: bool = False) -> tuple | None:
        """A child with one run of one stage this year (and a recorded parent who can claim)."""
        if self.child_used[kid]:
            return None
        runs = self.runs(kid)
        if len(runs) != 1:
            return None
        stage, start, end = runs[0]
        if enrolled and stage < 2:
            return None
        if full_year and (start, end) != (self.first_month, self.last_month):
            return None
        parents = [p for p in self.recorded_parents(kid) if self.taxpayer_ok[p]]
        if not parents:
            return None
        return stage, start, end, parents

    def children_defect_line(self, kid: int, parent: int, stage: int, start: int, end: int, **values: Any) -> int:
        standard = children_standard(self.year)
        defaults: dict[str, Any] = {"taxpayer": parent, "subject": kid, "deduction": "children_education",
                                    "start": start, "end": end, "share": 1.0, "monthly": standard,
                                    "stage": STAGE_NAMES[stage], "relation": "child"}
        defaults.update(values)
        return self.line(**defaults)

    def case_children_typo(self, kid: int, defect: str) -> int:
        found = self.single_run_kid(kid, enrolled=False)
        if not found:
            return 0
        stage, start, end, parents = found
        parent = parents[int(self.rng.integers(0, len(parents)))]
        stale = defect == "invalid_subject_id"
        typo = self.typo_id(self.pop.ids[kid], recompute_check=not stale)
        months = self.months(start, end)
        reasons = ("INVALID_SUBJECT_ID", "FUZZY_MATCH") if stale else ("FUZZY_MATCH",)
        self.child_used[kid] = True
        self.children_defect_line(kid, parent, stage, start, end, subject_id_override=typo, defect=defect,
                                  scenario="subject_id_typo_stale_check" if stale else "subject_id_typo_recomputed",
                                  status="review", reasons=reasons,
                                  allowed=children_standard(self.year) * months, verified_months=months)
        return 1

    # ---- issue 16: another real person's ID ------------------------------------------------------------------
    def id_neighbours(self, people: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(person, neighbour) pairs: the neighbour's ID is the person's with one sequence digit (ID positions
        15-17) changed and the check character recomputed, so the same county and birth date."""
        if self._bodies is None:
            bodies = np.char.ljust(self.pop.ids.astype("U17"), 17).astype(np.int64)
            order = np.argsort(bodies, kind="stable")
            self._bodies = (bodies[order], order)
        sorted_bodies, order = self._bodies
        people = np.asarray(people, dtype=np.int64)
        found_people, found_others = [], []
        for lo in range(0, len(people), 50_000):
            chunk = people[lo:lo + 50_000]
            body = np.char.ljust(self.pop.ids[chunk].astype("U17"), 17).astype(np.int64)
            for power in (100, 10, 1):
                digit = (body // power) % 10
                for step in range(1, 10):
                    variant = body + (((digit + step) % 10) - digit) * power
                    at = np.minimum(np.searchsorted(sorted_bodies, variant), len(sorted_bodies) - 1)
                    hit = sorted_bodies[at] == variant
                    found_people.append(chunk[hit])
                    found_others.append(order[at[hit]])
        if not found_people:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(found_people), np.concatenate(found_others)

    def names_agree(self, a: int, b: int) -> bool:
        """The two people's names are the same or sound the same (toneless pinyin, the linker's phonetic level)."""
        from pypinyin import lazy_pinyin

        name_a, name_b = str(self.pop.names[a]), str(self.pop.names[b])
        return name_a == name_b or lazy_pinyin(name_a) == lazy_pinyin(name_b)

    def other_person_id(self, person: int, neighbours: dict[int, list[int]]) -> str | None:
        """The ID of a real person one sequence digit away whose name does not agree with ``person``'s."""
        for other in neighbours.get(person, []):
            if not self.names_agree(person, other):
                return str(self.pop.ids[other])
        return None

    def constructed_other_child(self, kid: int, parents: list[int]) -> str | None:
        """Where the population has no such neighbour (small data sets), add one: another real child with the ID
        one sequence digit away, the same birth date and county, another name and an unrelated guardian."""
        kid_id = str(self.pop.ids[kid])
        position = int(self.rng.choice([14, 15, 16]))
        digit = str((int(kid_id[position]) + int(self.rng.integers(1, 10))) % 10)
        body = kid_id[:position] + digit + kid_id[position + 1:17]
        other_id = body + check_char(body)
        if self.id_exists(other_id):
            return None
        for _ in range(20):
            donor = int(self.kids[int(self.rng.integers(0, len(self.kids)))])
            name = str(self.pop.names[donor])
            if donor != kid and not self.names_agree(kid, donor):
                break
        else:
            return None
        born = int(self.pop.birth[kid])
        for _ in range(1000):  # a guardian of a parent's age: 20 to 45 years older
            guardian = self.taxpayer_for_unrelated(set(parents), older_than=born - 20 * 365)
            if self.pop.birth[guardian] > born - 45 * 365:
                break
        else:
            return None
        self.new_ids.add(other_id)
        self.extra_people.append({"like": kid, "id": other_id, "male": int(other_id[16]) % 2 == 1,
                                  "parent": guardian, "name": name})
        return other_id

    def case_child_other_id(self, kid: int, neighbours: dict[int, list[int]]) -> int:
        found = self.single_run_kid(kid, enrolled=False)
        if not found:
            return 0
        other_id = self.other_person_id(kid, neighbours)
        if other_id is None and neighbours.get(-1) is not None:  # -1: construct the other child when needed
            other_id = self.constructed_other_child(kid, found[3])
        if other_id is None:
            return 0
        stage, start, end, parents = found
        parent = parents[int(self.rng.integers(0, len(parents)))]
        months = self.months(start, end)
        self.child_used[kid] = True
        self.children_defect_line(kid, parent, stage, start, end, subject_id_override=other_id,
                                  defect="id_of_another_person", scenario="child_id_of_another_real_child",
                                  status="review", reasons=("FUZZY_MATCH",),
                                  allowed=children_standard(self.year) * months, verified_months=months)
        return 1

    def case_parent_other_id(self, parent: int, neighbours: dict[int, list[int]]) -> int:
        if self.parent_used[parent] or not self.alive_all_year[parent]:
            return 0
        if int(self.pop.birth_month[parent]) + 720 > self.first_month:
            return 0
        claimants = self.elderly_claimants(parent)
        if not claimants:
            return 0
        other_id = self.other_person_id(parent, neighbours)
        if other_id is None:
            return 0
        taxpayer = claimants[0]
        standard, cap = elderly_standards(self.year)
        only = bool(self.pop.only_child_cert[taxpayer])
        amount = standard if only else cap
        self.parent_used[parent] = True
        self.elderly_taxpayer_used[taxpayer] = True
        self.line(taxpayer=taxpayer, subject=parent, deduction="elderly_support", start=self.first_month,
                  end=self.last_month, monthly=amount, relation="parent", only_child=only,
                  subject_id_override=other_id, defect="id_of_another_person",
                  scenario="parent_id_of_another_real_person", status="review", reasons=("FUZZY_MATCH",),
                  allowed=amount * 12, verified_months=12)
        return 1

    def typo_name(self, name: str) -> str | None:
        """The name with one given-name character replaced by another that sounds different (a real typo, not a
        homophone): the name no longer agrees, the ID still does."""
        from pypinyin import lazy_pinyin

        if "\u00b7" in name or len(name) < 2:
            return None
        pool = sorted(set("".join(ref.GIVEN_CHARS.values())))
        for _ in range(20):
            position = int(self.rng.integers(1, len(name)))
            char = pool[int(self.rng.integers(0, len(pool)))]
            typo = name[:position] + char + name[position + 1:]
            if lazy_pinyin(typo) != lazy_pinyin(name):
                return typo
        return None

    def case_child_name_typo(self, kid: int) -> int:
        found = self.single_run_kid(kid, enrolled=False)
        if not found:
            return 0
        typo = self.typo_name(str(self.pop.names[kid]))
        if typo is None:
            return 0
        stage, start, end, parents = found
        months = self.months(start, end)
        self.child_used[kid] = True
        self.children_defect_line(kid, parents[0], stage, start, end, subject_name_override=typo,
                                  defect="subject_name_typo", scenario="right_id_name_one_character_wrong",
                                  status="review", reasons=("NAME_MISMATCH",),
                                  allowed=children_standard(self.year) * months, verified_months=months)
        return 1

    def case_fabricated_subject(self, defect: str) -> int:
        taxpayer = self.taxpayer_for_unrelated(set())
        value, name, birth = self.fabricated_person((self.year - 14, self.year - 7))
        if defect == "invalid_subject_id":
            shown = excel_damaged(value) if self.rng.random() < 0.5 else value[:16]
            reasons: tuple[str, ...] = ("INVALID_SUBJECT_ID", "SUBJECT_NOT_FOUND")
            scenario = "subject_id_garbage_unknown_person"
        else:
            shown = value
            reasons = ("SUBJECT_NOT_FOUND",)
            scenario = "subject_valid_id_nobody"
        self.line(taxpayer=taxpayer, subject=-1, deduction="children_education", start=self.first_month,
                  end=self.last_month, share=1.0, monthly=children_standard(self.year), stage="compulsory",
                  relation="child", subject_id_override=shown, subject_name_override=name,
                  subject_birth_override=birth, defect=defect, scenario=scenario, status="rejected",
                  reasons=reasons, allowed=0.0, verified_months=0)
        return 1

    def case_not_enrolled(self, kid: int) -> int:
        if self.child_used[kid]:
            return 0
        parents = [p for p in self.recorded_parents(kid) if self.taxpayer_ok[p]]
        if not parents:
            return 0
        runs = self.runs(kid)
        age = int(self.age[kid])
        if not runs and 16 <= age <= 21:
            claimed_stage = 3 if age <= 18 else 4
            allowed_months, scenario = 0, "not_enrolled_whole_year"
        elif len(runs) == 1 and runs[0][0] >= 2 and (runs[0][1], runs[0][2]) != (self.first_month,
                                                                                 self.last_month):
            claimed_stage = runs[0][0]
            allowed_months, scenario = self.months(runs[0][1], runs[0][2]), "not_enrolled_part_of_year"
        else:
            return 0
        self.child_used[kid] = True
        standard = children_standard(self.year)
        self.children_defect_line(kid, parents[0], claimed_stage, self.first_month, self.last_month,
                                  defect="not_enrolled", scenario=scenario,
                                  status="partial" if allowed_months else "rejected", reasons=("NOT_ENROLLED",),
                                  allowed=standard * allowed_months, verified_months=allowed_months)
        return 1

    def case_stage_mismatch(self, kid: int) -> int:
        found = self.single_run_kid(kid, enrolled=True, full_year=True)
        if not found:
            return 0
        stage, start, end, parents = found
        claimed = int(self.rng.choice([s for s in (2, 3, 4) if s != stage]))
        self.child_used[kid] = True
        self.children_defect_line(kid, parents[0], claimed, start, end, defect="stage_mismatch",
                                  scenario=f"enrolled_{STAGE_NAMES[stage]}_claimed_{STAGE_NAMES[claimed]}",
                                  status="rejected", reasons=("STAGE_MISMATCH",), allowed=0.0, verified_months=0)
        return 1

    def case_share_exceeded(self, kid: int) -> int:
        found = self.single_run_kid(kid, enrolled=False)
        if not found or len(found[3]) != 2:
            return 0
        stage, start, end, parents = found
        self.child_used[kid] = True
        months = self.months(start, end)
        standard = children_standard(self.year)
        for parent in parents:
            self.children_defect_line(kid, parent, stage, start, end, defect="share_exceeded",
                                      scenario="both_parents_100_percent", status="partial",
                                      reasons=("SHARE_EXCEEDED",), allowed=standard * 0.5 * months,
                                      verified_months=months)
        return 2

    def case_over_cap(self, kid: int) -> int:
        found = self.single_run_kid(kid, enrolled=False)
        if not found:
            return 0
        stage, start, end, parents = found
        self.child_used[kid] = True
        months = self.months(start, end)
        standard = children_standard(self.year)
        self.children_defect_line(kid, parents[0], stage, start, end, monthly=standard * 1.5, defect="over_cap",
                                  scenario="monthly_above_standard", status="partial", reasons=("OVER_CAP",),
                                  allowed=standard * months, verified_months=months)
        return 1

    def case_relation_unverified(self, kid: int) -> int:
        found = self.single_run_kid(kid, enrolled=False)
        if not found:
            return 0
        stage, start, end, _ = found
        pop = self.pop
        real_parents = {int(pop.father[kid]), int(pop.mother[kid])}
        # an uncle or aunt (a parent's sibling) when there is one, else a stranger
        uncles = []
        for parent in real_parents - {-1}:
            grandparent = int(pop.mother[parent])
            if grandparent >= 0:
                uncles += [c for c, _ in self.children_of(grandparent)
                           if c not in real_parents and self.taxpayer_ok[c]]
        taxpayer = uncles[0] if uncles else self.taxpayer_for_unrelated(real_parents)
        self.child_used[kid] = True
        self.children_defect_line(kid, taxpayer, stage, start, end, defect="relation_unverified",
                                  scenario="uncle_or_aunt" if uncles else "unrelated_adult", status="rejected",
                                  reasons=("RELATION_UNVERIFIED",), allowed=0.0, verified_months=0)
        return 1

    def case_ambiguous(self, kid: int) -> int:
        found = self.single_run_kid(kid, enrolled=True)
        if not found:
            return 0
        stage, start, end, parents = found
        a_id = self.pop.ids[kid]
        digits = [d for d in "0123456789" if d != a_id[16]]
        self.rng.shuffle(digits)
        b_digit, claim_digit = digits[0], digits[1]
        b_body, claim_body = a_id[:16] + b_digit, a_id[:16] + claim_digit
        b_id, claim_id = b_body + check_char(b_body), claim_body + check_char(claim_body)
        if self.id_exists(b_id) or self.id_exists(claim_id):
            return 0
        self.new_ids.update({b_id, claim_id})
        guardian = self.taxpayer_for_unrelated(set(parents), older_than=int(self.pop.birth[kid]) - 20 * 365)
        self.extra_people.append({"like": kid, "id": b_id, "male": int(b_digit) % 2 == 1, "parent": guardian})
        self.child_used[kid] = True
        self.children_defect_line(kid, parents[0], stage, start, end, subject_id_override=claim_id,
                                  defect="ambiguous_match", scenario="two_people_same_name_and_birth_one_digit_away",
                                  status="review", reasons=("AMBIGUOUS_MATCH",), allowed=0.0, verified_months=0,
                                  clean_name=True)
        return 1

    def case_age_ineligible(self, variant: int, kid: int, parent: int) -> int:
        pop = self.pop
        if variant == 0:  # preschool claimed for a child under 3 all year
            if self.child_used[kid] or pop.birth_month[kid] + 36 <= self.last_month or \
                    pop.birth_month[kid] >= self.first_month:
                return 0
            parents = [p for p in self.recorded_parents(kid) if self.taxpayer_ok[p]]
            if not parents:
                return 0
            self.child_used[kid] = True
            self.children_defect_line(kid, parents[0], 1, self.first_month, self.last_month,
                                      defect="age_ineligible", scenario="preschool_under_3",
                                      status="rejected", reasons=("AGE_INELIGIBLE",), allowed=0.0,
                                      verified_months=0)
            return 1
        if variant == 1:  # infant care for a child aged 3-5 all year
            bm = int(pop.birth_month[kid])
            if self.child_used[kid] or not (bm + 36 <= self.first_month and bm + 72 > self.last_month):
                return 0
            parents = [p for p in self.recorded_parents(kid) if self.taxpayer_ok[p]]
            if not parents or infant_standard(self.year) == 0:
                return 0
            self.child_used[kid] = True
            self.line(taxpayer=parents[0], subject=kid, deduction="infant_care", start=self.first_month,
                      end=self.last_month, share=1.0, monthly=infant_standard(self.year), relation="child",
                      defect="age_ineligible", scenario="infant_care_aged_3_plus", status="rejected",
                      reasons=("AGE_INELIGIBLE",), allowed=0.0, verified_months=0)
            return 1
        # elderly support for a parent under 60 all year (variant 2) or turning 60 during the year (variant 3)
        if self.parent_used[parent] or not self.alive_all_year[parent]:
            return 0
        turns_60 = int(pop.birth_month[parent]) + 720
        if variant == 2 and turns_60 <= self.last_month:
            return 0
        if variant == 3 and not (self.first_month < turns_60 <= self.last_month):
            return 0
        other = int(pop.spouse[parent])
        if other >= 0 and self.alive_at_start[other] and pop.birth_month[other] + 720 <= self.last_month:
            return 0  # the other parent would make the taxpayer eligible: keep the case about one parent
        claimants = self.elderly_claimants(parent)
        if len(claimants) != 1:
            return 0
        taxpayer = claimants[0]
        standard, cap = elderly_standards(self.year)
        only = bool(pop.only_child_cert[taxpayer])
        amount = standard if only else cap
        months = self.last_month - turns_60 + 1 if variant == 3 else 0
        self.parent_used[parent] = True
        self.elderly_taxpayer_used[taxpayer] = True
        self.line(taxpayer=taxpayer, subject=parent, deduction="elderly_support", start=self.first_month,
                  end=self.last_month, monthly=amount, relation="parent", only_child=only,
                  defect="age_ineligible", scenario="parent_turns_60_in_year" if months else "parent_under_60",
                  status="partial" if months else "rejected", reasons=("AGE_INELIGIBLE",),
                  allowed=amount * months, verified_months=months)
        return 1

    def case_elderly(self, parent: int, defect: str) -> int:
        pop = self.pop
        if self.parent_used[parent]:
            return 0
        standard, cap = elderly_standards(self.year)
        turns_60 = int(pop.birth_month[parent]) + 720
        if turns_60 > self.first_month:
            return 0
        claimants = self.elderly_claimants(parent)
        if defect == "subject_deceased":
            if not (pop.death[parent] < self.year_start) or not claimants:
                return 0
            taxpayer = claimants[0]
            only = bool(pop.only_child_cert[taxpayer])
            amount = standard if only else cap
            plan = [(taxpayer, amount, only, "rejected", ("SUBJECT_DECEASED",), 0.0)]
            scenario = "parent_died_before_year"
        elif not self.alive_all_year[parent]:
            return 0
        elif defect == "not_only_child":
            siblings = [c for c, _ in self.children_of(parent)]
            uncertified = [c for c in claimants if not pop.only_child_cert[c]]
            if len(siblings) < 2 or not uncertified:
                return 0
            plan = [(uncertified[0], standard, True, "partial", ("NOT_ONLY_CHILD",), cap)]
            scenario = "has_siblings_claims_only_child_amount"
        elif defect == "sibling_cap_exceeded":
            uncertified = [c for c in claimants if not pop.only_child_cert[c]]
            if len(uncertified) < 3:
                return 0
            share = standard / (3 * cap)
            plan = [(c, cap, False, "partial", ("SIBLING_CAP_EXCEEDED",), cap * share) for c in uncertified[:3]]
            scenario = "three_siblings_at_the_cap"
        else:
            raise ValueError(defect)
        self.parent_used[parent] = True
        for taxpayer, amount, only, status, reasons, allowed_monthly in plan:
            self.elderly_taxpayer_used[taxpayer] = True
            months = 12 if allowed_monthly > 0 else 0
            self.line(taxpayer=taxpayer, subject=parent, deduction="elderly_support", start=self.first_month,
                      end=self.last_month, monthly=amount, relation="parent", only_child=only, defect=defect,
                      scenario=scenario, status=status, reasons=reasons, allowed=round(allowed_monthly * 12, 2),
                      verified_months=months)
        return len(plan)

    def case_medical(self, patient: int, defect: str) -> int:
        x = float(self.out_of_pocket[patient])
        if self.patient_used[patient] or not self.taxpayer_ok[patient]:
            return 0
        if defect == "expense_below_threshold":
            if not 0 < x <= SERIOUS_THRESHOLD:
                return 0
            claimed = float(int(self.rng.integers(3, 40)) * 1000)
            status, reasons, allowed = "rejected", ("EXPENSE_BELOW_THRESHOLD",), 0.0
        else:
            if not SERIOUS_THRESHOLD + 5000 < x <= SERIOUS_THRESHOLD + SERIOUS_CAP - 6000:
                return 0
            allowed = round(x - SERIOUS_THRESHOLD, 2)
            claimed = float(np.ceil(allowed / 1000) * 1000 + int(self.rng.integers(1, 5)) * 1000)
            status, reasons = "partial", ("AMOUNT_EXCEEDS_EVIDENCE",)
        self.patient_used[patient] = True
        self.line(taxpayer=patient, subject=patient, deduction="serious_illness", annual=claimed, relation="self",
                  defect=defect, scenario=f"{defect}_self", status=status, reasons=reasons, allowed=allowed)
        return 1

    def force_medical_case(self, defect: str) -> int:
        """For small populations: give an adult without a qualifying cost a medical row that fits the case."""
        for _ in range(10_000):
            person = int(self.rng.integers(0, len(self.pop)))
            if self.taxpayer_ok[person] and not self.patient_used[person] and not self.has_medical[person]:
                break
        else:
            return 0
        if defect == "expense_below_threshold":
            x = round(float(self.rng.uniform(2_000, 14_000)), 2)
        else:
            x = round(float(self.rng.uniform(25_000, 80_000)), 2)
        self.extra_medical.append((person, self.year, round(x / float(self.rng.uniform(0.3, 0.6)), 2), x))
        self.out_of_pocket[person] = x
        self.has_medical[person] = True
        return self.case_medical(person, defect)

    def case_source_missing(self, room: int = 1) -> int:
        """A line of a deduction without a source yet. Continuing education has two kinds SPEC §2 allows side by
        side (SPEC §5): degree study (400 a month) and a qualification certificate (3600 in its year, an annual
        amount only). A taxpayer gets at most one line of each kind (a second of one kind would be a duplicate);
        some get one of each, which is not a duplicate."""
        taxpayer = self.taxpayer_for_unrelated(set())
        kind = self.rng.choice(["continuing_education", "housing_loan_interest", "housing_rent"], p=[.3, .35, .35])
        values: dict[str, Any] = {"taxpayer": taxpayer, "deduction": str(kind), "defect": "source_missing",
                                  "scenario": str(kind), "status": "unverifiable", "reasons": ("SOURCE_MISSING",),
                                  "allowed": 0.0, "verified_months": 0}
        certificate = {"annual": 3600.0, "subject": taxpayer, "relation": "self",
                       "scenario": "qualification_certificate"}
        degree = {"start": self.first_month, "end": self.last_month, "monthly": 400.0, "subject": taxpayer,
                  "relation": "self"}
        if kind == "continuing_education":
            kinds = ["certificate"] if self.rng.random() < 0.3 else ["degree"]
            if room >= 2 and self.rng.random() < 0.2:
                kinds = ["degree", "certificate"]
            if any((taxpayer, k) in self.ce_used for k in kinds):
                return 0
            for k in kinds:
                self.ce_used.add((taxpayer, k))
                line = {**values, **(certificate if k == "certificate" else degree)}
                if len(kinds) == 2:
                    line["scenario"] = f"degree_study_and_certificate_{k}"
                self.line(**line)
            return len(kinds)
        monthly = {"housing_loan_interest": 1000.0}.get(str(kind), float(self.rng.choice([1500.0, 1100.0, 800.0])))
        values.update(start=self.first_month, end=self.last_month, monthly=monthly)
        self.line(**values)
        return 1

    def duplicates(self, count: int) -> int:
        lines = self.lines.cols
        eligible = [i for i in range(len(self.lines))
                    if lines["defect"][i] == "none" and lines["deduction"][i] != "infant_care"]
        if not eligible:
            return 0
        chosen = self.rng.choice(eligible, size=min(count, len(eligible)), replace=False).tolist()
        for original in chosen:
            values = {name: lines[name][original] for name in Lines.FIELDS}
            values.update(defect="duplicate_claim", scenario="same_line_entered_twice", status="rejected",
                          reasons=("DUPLICATE_CLAIM",), allowed=0.0,
                          verified_months=None if values["deduction"] == "serious_illness" else 0,
                          after_line=original)
            self.line(**values)
        return len(chosen)


def _case_counts(n_claims: int, defect_rate: float) -> dict[str, int]:
    """Cases per defect class: proportional to the weights, at least one of each."""
    budget = defect_rate * n_claims
    return {defect: max(1, round(weight * budget / LINES_PER_CASE.get(defect, 1)))
            for defect, weight in DEFECT_WEIGHTS.items()}


def build_claims(pop: Population, rng: np.random.Generator, n_claims: int, defect_rate: float,
                 known: np.ndarray | None = None) -> ClaimBuilder:
    """Build exactly ``n_claims`` lines (when the population allows) with expectations. ``known``: the sorted
    17-digit bodies of every ID taken elsewhere in the data set (other blocks), which no constructed ID may use."""
    builder = ClaimBuilder(pop, rng, known)
    cases = _case_counts(n_claims, defect_rate)
    kids = builder.kid_pool()
    parents = builder.parent_pool()
    patients = builder.patient_pool()

    def run_cases(defect: str, wanted: int, pool: list[int], attempt: Any) -> None:
        done = 0
        for person in pool:
            if done >= wanted:
                break
            done += 1 if attempt(person) else 0
        if done < wanted:
            builder.skipped[defect] = builder.skipped.get(defect, 0) + wanted - done

    run_cases("ambiguous_match", cases["ambiguous_match"], kids, builder.case_ambiguous)
    run_cases("sibling_cap_exceeded", cases["sibling_cap_exceeded"], parents,
              lambda p: builder.case_elderly(p, "sibling_cap_exceeded"))
    run_cases("subject_deceased", cases["subject_deceased"], parents,
              lambda p: builder.case_elderly(p, "subject_deceased"))
    run_cases("not_only_child", cases["not_only_child"], parents,
              lambda p: builder.case_elderly(p, "not_only_child"))
    age_variants = iter(range(10**12))
    kid_cases = (cases["age_ineligible"] + 1) // 2
    run_cases("age_ineligible", kid_cases, kids,
              lambda k: builder.case_age_ineligible(next(age_variants) % 2, k, -1))
    run_cases("age_ineligible", cases["age_ineligible"] - kid_cases, parents,
              lambda p: builder.case_age_ineligible(2 + next(age_variants) % 2, -1, p))
    run_cases("not_enrolled", cases["not_enrolled"], kids, builder.case_not_enrolled)
    run_cases("stage_mismatch", cases["stage_mismatch"], kids, builder.case_stage_mismatch)
    run_cases("share_exceeded", cases["share_exceeded"], kids, builder.case_share_exceeded)
    run_cases("over_cap", cases["over_cap"], kids, builder.case_over_cap)
    run_cases("relation_unverified", cases["relation_unverified"], kids, builder.case_relation_unverified)
    run_cases("fuzzy_match", cases["fuzzy_match"], kids, lambda k: builder.case_children_typo(k, "fuzzy_match"))
    # a third for parents (elderly support), the rest for children; the population's own neighbours first, then
    # (children only) constructed ones
    def neighbour_map(pool: list[int]) -> dict[int, list[int]]:
        people, others = builder.id_neighbours(np.array(pool, dtype=np.int64))
        found: dict[int, list[int]] = {}
        for person, other in zip(people.tolist(), others.tolist()):
            found.setdefault(person, []).append(other)
        return found

    other_id_cases = cases["id_of_another_person"]
    parent_neighbours = neighbour_map(parents)
    before = len(builder.lines)
    run_cases("id_of_another_person", other_id_cases // 3, [p for p in parents if p in parent_neighbours],
              lambda p: builder.case_parent_other_id(p, parent_neighbours))
    builder.skipped.pop("id_of_another_person", None)
    kid_neighbours = neighbour_map(kids)
    wanted = other_id_cases - (len(builder.lines) - before)
    before = len(builder.lines)
    run_cases("id_of_another_person", wanted, [k for k in kids if k in kid_neighbours],
              lambda k: builder.case_child_other_id(k, kid_neighbours))
    builder.skipped.pop("id_of_another_person", None)
    kid_neighbours[-1] = []  # now construct the other child where the population has none
    run_cases("id_of_another_person", wanted - (len(builder.lines) - before), kids,
              lambda k: builder.case_child_other_id(k, kid_neighbours))
    run_cases("subject_name_typo", cases["subject_name_typo"], kids, builder.case_child_name_typo)
    typo_cases = max(1, round(cases["invalid_subject_id"] * 0.7))
    run_cases("invalid_subject_id", typo_cases, kids,
              lambda k: builder.case_children_typo(k, "invalid_subject_id"))
    for _ in range(max(1, cases["invalid_subject_id"] - typo_cases)):
        builder.case_fabricated_subject("invalid_subject_id")
    for _ in range(cases["subject_not_found"]):
        builder.case_fabricated_subject("subject_not_found")
    run_cases("expense_below_threshold", cases["expense_below_threshold"], patients,
              lambda p: builder.case_medical(p, "expense_below_threshold"))
    run_cases("amount_exceeds_evidence", cases["amount_exceeds_evidence"], patients,
              lambda p: builder.case_medical(p, "amount_exceeds_evidence"))
    for defect in ("expense_below_threshold", "amount_exceeds_evidence"):
        missing = builder.skipped.pop(defect, 0)
        for _ in range(missing):
            builder.force_medical_case(defect)

    # legitimate lines fill what the defects, duplicates and source-missing lines leave
    reserved = cases["duplicate_claim"] + cases["source_missing"]
    legit_total = max(0, n_claims - len(builder.lines) - reserved)
    targets = {name: round(weight * legit_total) for name, weight in LEGIT_WEIGHTS.items()}
    if infant_standard(builder.year) == 0:
        targets["children_education"] += targets.pop("infant_care")
    fillers: dict[str, tuple[list[int], Callable[..., int]]] = {
        "serious_illness": (patients, builder.legit_serious),
        "infant_care": (kids, lambda k, room: builder.legit_children(k, deduction="infant_care", room=room)),
        "elderly_support": (parents, builder.legit_elderly),
        "children_education": (kids, builder.legit_children),
    }
    start = len(builder.lines)
    for name in ("serious_illness", "infant_care", "elderly_support", "children_education"):
        if name not in targets:
            continue
        pool, fill = fillers[name]
        goal = len(builder.lines) + targets[name]
        for person in pool:
            if len(builder.lines) >= goal:
                break
            fill(person, room=goal - len(builder.lines))
    legit_made = len(builder.lines) - start
    if legit_made < legit_total:
        builder.skipped["legitimate"] = legit_total - legit_made
    builder.duplicates(cases["duplicate_claim"])
    while len(builder.lines) < n_claims:
        builder.case_source_missing(room=n_claims - len(builder.lines))
    return builder


__all__ = ["REASON_ORDER", "ClaimBuilder", "build_claims", "month_index"]
