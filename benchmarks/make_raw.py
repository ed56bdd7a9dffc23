"""Fast raw-extract generator for the hashing benchmark (valid IDs, realistic Chinese names and dates).

Not the synthetic population (see ``matchkit synth``): this only needs realistic *shapes* at high volume.
Usage: python benchmarks/make_raw.py education|claims N OUT.csv [--seed S]
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈")
GIVEN = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉浩宇轩子涵梓欣怡一诺")
COUNTIES = ["110101", "110105", "310104", "320402", "320411", "330106", "440106", "440305", "510104", "420102",
            "370102", "610113", "210102", "230103", "350203", "500103", "120101", "130102", "410105", "430102"]
WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])


def make_ids(rng: np.random.Generator, n: int, year_lo: int, year_hi: int) -> tuple[list[str], list[str]]:
    county = np.array(COUNTIES)[rng.integers(0, len(COUNTIES), n)]
    days = rng.integers(0, (year_hi - year_lo) * 365, n)
    dates = (np.datetime64(f"{year_lo}-01-01") + days.astype("timedelta64[D]")).astype(str)
    birth = np.char.replace(dates, "-", "")
    seq = np.char.zfill(rng.integers(0, 1000, n).astype(str), 3)
    body = np.char.add(np.char.add(county, birth), seq)
    digits = np.frombuffer("".join(body.tolist()).encode(), dtype=np.uint8).reshape(n, 17) - 48
    check = np.array(list("10X98765432"))[(digits.astype(np.int64) @ WEIGHTS) % 11]
    return np.char.add(body, check).tolist(), dates.tolist()


def make_names(rng: np.random.Generator, n: int) -> list[str]:
    surname = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), n)]
    g1 = np.array(GIVEN)[rng.integers(0, len(GIVEN), n)]
    g2 = np.where(rng.random(n) < 0.7, np.array(GIVEN)[rng.integers(0, len(GIVEN), n)], "")
    return np.char.add(np.char.add(surname, g1), g2).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", choices=["education", "claims"])
    parser.add_argument("n", type=int)
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.n
    with open(args.out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if args.source == "education":
            ids, dates = make_ids(rng, n, 2003, 2021)
            names = make_names(rng, n)
            writer.writerow(["student_id", "student_name", "birth_date", "education_stage", "enrolled_from",
                             "enrolled_to"])
            stages = np.array(["compulsory", "high_school", "higher", "preschool"])[rng.integers(0, 4, n)]
            start = np.char.add(rng.integers(2015, 2024, n).astype(str), "-09").tolist()
            writer.writerows(zip(ids, names, dates, stages.tolist(), start, [""] * n))
        else:
            taxpayers, _ = make_ids(rng, n, 1960, 1995)
            subjects, dates = make_ids(rng, n, 2003, 2021)
            names = make_names(rng, n)
            writer.writerow(["claim_id", "taxpayer_id", "deduction", "tax_year", "period_start", "period_end",
                             "subject_id", "subject_name", "subject_birth_date", "subject_relation", "share",
                             "monthly_amount", "education_stage"])
            for i in range(n):
                writer.writerow([f"C{i:09d}", taxpayers[i], "children_education", "2024", "2024-01", "2024-12",
                                 subjects[i], names[i], dates[i], "child", "100%", "2000", "compulsory"])


if __name__ == "__main__":
    main()
