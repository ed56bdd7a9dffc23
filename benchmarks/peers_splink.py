"""Splink 5 (duckdb backend) on the labelled linkage sets, configured as Splink's own documentation configures each,
for `bench_splink.py`. Runs in a separate environment (`--splink-python`, e.g. /tmp/splinkvenv/bin/python with
`pip install splink`); matchkit never imports it and it never imports matchkit.

Configurations (Splink's docs/demos, 2024-2025):
- febrl3 (used for FEBRL1-3, dedupe): examples/duckdb/febrl3 — blocking soc_sec_id | given_name | surname |
  date_of_birth | postcode; NameComparison given_name, surname; DateOfBirthComparison; DamerauLevenshtein
  soc_sec_id [2]; ExactMatch street_number, postcode with term frequencies; prior from deterministic rules at recall
  0.9; u from 1e6 random pairs (seed 2); EM blocked on date_of_birth, then postcode.
- febrl4 (link): examples/duckdb/febrl4, the "detailed" model — blocking given_name+surname | swapped names |
  date_of_birth | soc_sec_id | state+address_1 | street_number+address_1 | postcode; NameComparison with TF;
  DateOfBirthComparison; DamerauLevenshtein soc_sec_id [1, 2]; ExactMatch street_number TF; DamerauLevenshtein
  postcode [1, 2] TF; prior at recall 0.8; u 1e6; EM on date_of_birth and postcode without term frequencies.
- fake_1000 dedupe: tutorials/04 — blocking first_name+city | surname; NameComparison first_name, surname;
  Levenshtein dob 1; ExactMatch city TF; EmailComparison; prior at recall 0.7; u 2e6; EM first_name+surname, dob.
- fake_1000 link: examples/duckdb/link_only — blocking first_name | surname; NameComparison x2; DateOfBirth;
  ExactMatch city TF; EmailComparison; prior at recall 0.7; u 1e6 (seed 1); EM dob, email, first_name (dob read
  as text here, so DateOfBirthComparison takes input_is_string=True where the example has a date column).
- historical_50k (dedupe; link on a split): examples/duckdb/deduplicate_50k_synthetic — ten blocking rules;
  ForenameSurnameComparison (TF on the concatenation); DateOfBirthComparison; PostcodeComparison; ExactMatch
  birth_place, occupation TF; prior at recall 0.6; u 1e7; EM first_name+surname, dob, without TF.

Every pair Splink scores at probability >= 0.01 is written (`left_id,right_id,score`), and the harness applies
the threshold, so both tools are cut the same way. Prints one line `RESULT {json}` (seconds).

Usage: python peers_splink.py CONFIG MODE LEFT.csv [RIGHT.csv] -o PAIRS.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from typing import Any


def _configure(name: str, link_type: str) -> tuple[list[Any], list[Any], list[Any], float, dict[str, Any]]:
    import splink.comparison_library as cl
    from splink import block_on

    if name == "febrl3":
        blocking = [block_on("soc_sec_id"), block_on("given_name"), block_on("surname"), block_on("date_of_birth"),
                    block_on("postcode")]
        comparisons = [
            cl.NameComparison("given_name"), cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
        ]
        deterministic = [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth"),
                         "l.given_name = r.surname and l.surname = r.given_name and l.date_of_birth = r.date_of_birth"]
        return blocking, comparisons, deterministic, 0.9, {
            "u_pairs": 1e6, "u_seed": 2, "em": [block_on("date_of_birth"), block_on("postcode")], "em_no_tf": False}
    if name == "febrl4":
        blocking = [block_on("given_name", "surname"), "l.given_name = r.surname and l.surname = r.given_name",
                    block_on("date_of_birth"), block_on("soc_sec_id"), block_on("state", "address_1"),
                    block_on("street_number", "address_1"), block_on("postcode")]
        comparisons = [
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d",
                                     invalid_dates_as_null=True),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True),
        ]
        deterministic = [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")]
        return blocking, comparisons, deterministic, 0.8, {
            "u_pairs": 1e6, "u_seed": None, "em": [block_on("date_of_birth"), block_on("postcode")], "em_no_tf": True}
    if name == "fake_1000" and link_type == "dedupe_only":
        from splink import ColumnExpression

        blocking = [block_on("first_name", "city"), block_on("surname")]
        comparisons = [
            cl.NameComparison("first_name"), cl.NameComparison("surname"),
            cl.LevenshteinAtThresholds(ColumnExpression("dob").cast_to_string(), 1),
            cl.ExactMatch("city").configure(term_frequency_adjustments=True),
            cl.EmailComparison("email"),
        ]
        deterministic = [block_on("first_name", "dob"),
                         "l.first_name = r.first_name and levenshtein(r.surname, l.surname) <= 2", block_on("email")]
        return blocking, comparisons, deterministic, 0.7, {
            "u_pairs": 2e6, "u_seed": None, "em": [block_on("first_name", "surname"), block_on("dob")],
            "em_no_tf": False}
    if name == "fake_1000":
        blocking = [block_on("first_name"), block_on("surname")]
        comparisons = [
            cl.NameComparison("first_name"), cl.NameComparison("surname"),
            cl.DateOfBirthComparison("dob", input_is_string=True),
            cl.ExactMatch("city").configure(term_frequency_adjustments=True),
            cl.EmailComparison("email"),
        ]
        deterministic = ["l.first_name = r.first_name and levenshtein(r.dob::VARCHAR, l.dob::VARCHAR) <= 1",
                         "l.surname = r.surname and levenshtein(r.dob::VARCHAR, l.dob::VARCHAR) <= 1",
                         "l.first_name = r.first_name and levenshtein(r.surname, l.surname) <= 2",
                         block_on("email")]
        return blocking, comparisons, deterministic, 0.7, {
            "u_pairs": 1e6, "u_seed": 1, "em": [block_on("dob"), block_on("email"), block_on("first_name")],
            "em_no_tf": False}
    if name == "historical_50k":
        blocking = [
            block_on("substr(first_name,1,3)", "substr(surname,1,4)"), block_on("surname", "dob"),
            block_on("first_name", "dob"), block_on("postcode_fake", "first_name"),
            block_on("postcode_fake", "surname"), block_on("dob", "birth_place"),
            block_on("substr(postcode_fake,1,3)", "dob"), block_on("substr(postcode_fake,1,3)", "first_name"),
            block_on("substr(postcode_fake,1,3)", "surname"),
            block_on("substr(first_name,1,2)", "substr(surname,1,2)", "substr(dob,1,4)"),
        ]
        comparisons = [
            cl.ForenameSurnameComparison("first_name", "surname",
                                         forename_surname_concat_col_name="first_name_surname_concat"),
            cl.DateOfBirthComparison("dob", input_is_string=True),
            cl.PostcodeComparison("postcode_fake"),
            cl.ExactMatch("birth_place").configure(term_frequency_adjustments=True),
            cl.ExactMatch("occupation").configure(term_frequency_adjustments=True),
        ]
        deterministic = [block_on("first_name", "surname", "dob"),
                         block_on("substr(first_name,1,2)", "surname", "substr(postcode_fake,1,2)"),
                         block_on("dob", "postcode_fake")]
        return blocking, comparisons, deterministic, 0.6, {
            "u_pairs": 1e7, "u_seed": None, "em": [block_on("first_name", "surname"), block_on("dob")],
            "em_no_tf": True}
    raise SystemExit(f"unknown configuration {name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", choices=("febrl3", "febrl4", "fake_1000", "historical_50k"))
    parser.add_argument("mode", choices=("dedupe", "link"))
    parser.add_argument("files", nargs="+")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--id-column", required=True)
    args = parser.parse_args()

    import duckdb
    from splink import DuckDBAPI, Linker, SettingsCreator

    started = time.perf_counter()
    link_type = "dedupe_only" if args.mode == "dedupe" else "link_only"
    blocking, comparisons, deterministic, recall, training = _configure(args.config, link_type)
    con = duckdb.connect()
    frames = []
    for path in args.files:
        relation = con.sql(f"select * from read_csv('{path}', all_varchar = true, header = true)")
        if args.config == "historical_50k":
            relation = relation.project("*, first_name || ' ' || surname as first_name_surname_concat")
        frames.append(relation)
    db_api = DuckDBAPI(connection=con)
    registered = [db_api.register(frame) for frame in frames]
    settings = SettingsCreator(unique_id_column_name=args.id_column, link_type=link_type,
                               blocking_rules_to_generate_predictions=blocking, comparisons=comparisons,
                               retain_intermediate_calculation_columns=False)
    linker = Linker(registered if len(registered) > 1 else registered[0], settings)
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=recall)
    if training["u_seed"] is None:
        linker.training.estimate_u_using_random_sampling(max_pairs=training["u_pairs"])
    else:
        linker.training.estimate_u_using_random_sampling(max_pairs=training["u_pairs"], seed=training["u_seed"])
    for rule in training["em"]:
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=training["em_no_tf"])
    predictions = linker.inference.predict(threshold_match_probability=0.01)
    rows = predictions.as_duckdbpyrelation().project(
        f"{args.id_column}_l, {args.id_column}_r, match_probability").fetchall()
    with open(args.output, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["left_id", "right_id", "score"])
        writer.writerows(rows)
    print("RESULT " + json.dumps({"seconds": time.perf_counter() - started, "pairs": len(rows)}))


if __name__ == "__main__":
    main()
