"""`matchkit dedupe`, ``matchkit.jobs.dedupe`` and ``matchkit.link.dedupe``: clustering functions against references (hypothesis), the chain
that average linkage refuses, and the command end to end on a made-up FEBRL-like file with known duplicates:
output, quality, library call, refusals by file name, and no raw value in anything it writes."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchkit.jobs.dedupe import dedupe_file
from matchkit.link.dedupe import average_link_clusters, connected_components, number_clusters
from matchkit.security.keys import new_key, write_key
from tests.test_link_job import (
    FEBRL,
    artefact_texts,
    duplicate,
    find_leaks,
    make_people,
    run_cli,
    secret_values,
    write_csv,
)


# --- clustering --------------------------------------------------------------------------------------------------
def reference_components(count: int, edges: list[tuple[int, int]]) -> list[int]:
    parent = list(range(count))

    def root(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    labels = [root(x) for x in range(count)]
    smallest: dict[int, int] = {}
    for node, label in enumerate(labels):
        smallest.setdefault(label, node)
    return [smallest[label] for label in labels]


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=80))))
def test_connected_components_match_a_reference(case):
    count, edges = case
    left = np.array([a for a, _ in edges], dtype=np.int64)
    right = np.array([b for _, b in edges], dtype=np.int64)
    assert connected_components(count, left, right).tolist() == reference_components(count, edges)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.floats(0, 1)), max_size=60))))
def test_average_linkage_refines_components(case):
    """Every average-linkage cluster lies inside one component of the pairs at or above the threshold, and a
    threshold of 0 (every average passes) gives exactly those components."""
    count, edges = case
    edges = [(a, b, s) for a, b, s in edges if a != b]
    left = np.array([a for a, _, _ in edges], dtype=np.int64)
    right = np.array([b for _, b, _ in edges], dtype=np.int64)
    scores = np.array([s for _, _, s in edges], dtype=np.float64)
    strong = scores >= 0.5
    components = connected_components(count, left[strong], right[strong])
    average = average_link_clusters(count, left, right, scores, 0.5)
    for label in np.unique(average):
        assert len(np.unique(components[average == label])) == 1
    assert average_link_clusters(count, left, right, scores, 0.0).tolist() == connected_components(
        count, left, right).tolist()


def test_average_linkage_does_not_chain():
    """A-B and B-C are sure, A-C was compared and is not: components join all three, average linkage keeps C
    apart (the average of B-C and A-C is below the threshold). D-E with nothing against them still join."""
    left, right = np.array([0, 1, 0, 3]), np.array([1, 2, 2, 4])
    scores = np.array([0.99, 0.98, 0.01, 0.9])
    assert number_clusters(connected_components(5, left[scores >= 0.5], right[scores >= 0.5])).tolist() == [
        0, 0, 0, 1, 1]
    assert number_clusters(average_link_clusters(5, left, right, scores, 0.5)).tolist() == [0, 0, 1, 2, 2]


def test_number_clusters_in_order_of_first_record():
    assert number_clusters(np.array([4, 4, 0, 2, 0])).tolist() == [0, 0, 1, 2, 1]


# --- the command -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One FEBRL-like file: 150 people, 60 of them with one or two noisy duplicates, shuffled; hashed."""
    folder = tmp_path_factory.mktemp("dedupe")
    rng = np.random.default_rng(314)
    people = make_people(rng, 150)
    rows, entity = [], {}
    for index, person in enumerate(people):
        copies = [person] + [duplicate(rng, person) for _ in range(int(rng.integers(1, 3)) if index < 60 else 0)]
        for number, values in enumerate(copies):
            record = f"rec-{index}-{number}"
            rows.append({"rec_id": record, **values})
            entity[record] = index
    rows = [rows[i] for i in rng.permutation(len(rows))]
    write_csv(folder / "people.csv", rows)
    key = write_key(new_key(), folder / "shared.key")
    code, out, err = run_cli(["hash", FEBRL, folder / "people.csv", "--key", key, "-o", folder / "people.parquet"])
    assert code == 0, err
    code, out2, err2 = run_cli(["dedupe", folder / "people.parquet", "-o", folder / "clusters.csv", "--pairs",
                                folder / "pairs.csv", "--stats", folder / "stats.json"])
    assert code == 0, err2
    return {"folder": folder, "rows": rows, "entity": entity, "key": key, "console": [out, err, out2, err2]}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def within_pairs(groups: dict[Any, list[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted((a, b))) for members in groups.values() for i, a in enumerate(members)  # type: ignore[misc]
            for b in members[i + 1:]}


def test_clusters_output(dup):
    clusters = read_csv(dup["folder"] / "clusters.csv")
    assert list(clusters[0]) == ["record_id", "cluster_id"]
    assert [c["record_id"] for c in clusters] == [r["rec_id"] for r in dup["rows"]]  # every record, file order
    numbers = [int(c["cluster_id"]) for c in clusters]
    first_seen = list(dict.fromkeys(numbers))
    assert first_seen == list(range(len(first_seen)))  # numbered from 0 in order of first record


def test_clusters_find_the_duplicates(dup):
    clusters = read_csv(dup["folder"] / "clusters.csv")
    predicted: dict[str, list[str]] = {}
    for row in clusters:
        predicted.setdefault(row["cluster_id"], []).append(row["record_id"])
    truth: dict[int, list[str]] = {}
    for record, index in dup["entity"].items():
        truth.setdefault(index, []).append(record)
    found, true = within_pairs(predicted), within_pairs(truth)
    assert len(found & true) / len(found) >= 0.97
    assert len(found & true) / len(true) >= 0.9


def test_pairs_output_and_stats(dup):
    import json

    pairs = read_csv(dup["folder"] / "pairs.csv")
    assert list(pairs[0]) == ["left_id", "right_id", "score"]
    assert all(float(p["score"]) >= 0.5 for p in pairs)
    assert len({tuple(sorted((p["left_id"], p["right_id"]))) for p in pairs}) == len(pairs)  # each pair once
    assert all(p["left_id"] != p["right_id"] for p in pairs)
    stats = json.loads((dup["folder"] / "stats.json").read_text(encoding="utf-8"))
    assert stats["method"] == "em" and stats["clustering"] == "average"
    assert stats["records"] == len(dup["rows"]) and stats["links"] == len(pairs)
    assert "clusters (average)" in dup["console"][2]


def test_library_call_matches_the_command(dup, tmp_path):
    result = dedupe_file(dup["folder"] / "people.parquet", tmp_path / "c.csv")
    assert (tmp_path / "c.csv").read_bytes() == (dup["folder"] / "clusters.csv").read_bytes()
    assert result.clusters == len(set(result.cluster_ids.tolist()))
    components = dedupe_file(dup["folder"] / "people.parquet", clusters="components")
    assert components.stats.clustering == "components"


def test_dedupe_refusals(dup, tmp_path):
    folder = dup["folder"]
    for args, needle in (
        ([folder / "missing.parquet", "-o", tmp_path / "c.csv"], "missing.parquet"),
        ([folder / "people.csv", "-o", tmp_path / "c.csv"], "people.csv"),
        ([folder / "people.parquet", "-o", tmp_path / "c.csv", "--threshold", "1.5"], "threshold must be in [0, 1]"),
        ([folder / "people.parquet", "-o", tmp_path / "no" / "c.csv"], "clusters output folder does not exist"),
    ):
        code, _, err = run_cli(["dedupe", *args])
        assert code == 1, (args, err)
        assert needle in err and "Traceback" not in err
    assert not (tmp_path / "c.csv").exists()


def test_dedupe_refuses_a_source_kind_file(tmp_path, key_file):
    from tests.test_link_job import REPO

    code, _, err = run_cli(["hash", "education", REPO / "sample_data" / "education.csv", "--key", key_file, "-o",
                            tmp_path / "e.parquet"])
    assert code == 0, err
    code, _, err = run_cli(["dedupe", tmp_path / "e.parquet", "-o", tmp_path / "c.csv"])
    assert code == 1 and "not a linkage file" in err


def test_no_raw_value_in_any_dedupe_artefact(dup):
    secrets = secret_values(dup["rows"])
    texts = artefact_texts(dup["folder"], dup["console"])
    texts.pop("people.csv", None)  # the raw input itself
    assert {"clusters.csv", "pairs.csv", "stats.json", "people.parquet"} <= set(texts)
    assert find_leaks(texts, secrets) == {}
