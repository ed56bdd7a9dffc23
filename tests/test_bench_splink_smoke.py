"""The Splink comparison harness (benchmarks/bench_splink.py) without Splink, on a tiny made-up file in the layout
of Splink's fake_1000, so the harness and the benchmark schemas cannot drift from the CLI and the library. Figures
are checked for presence and sense only."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from matchkit.schema import load_schema

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def harness():
    path = REPO / "benchmarks" / "bench_splink.py"
    spec = importlib.util.spec_from_file_location("bench_splink", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_splink"] = module
    spec.loader.exec_module(module)  # importing must do no work
    return module


@pytest.mark.parametrize("schema", sorted((REPO / "benchmarks" / "schemas").glob("*.toml")), ids=lambda p: p.name)
def test_benchmark_schemas_load(schema):
    loaded = load_schema(schema)
    assert loaded.kind == "link" and loaded.blocking and loaded.tf_groups


def test_harness_runs_matchkit_link_and_dedupe(harness, tmp_path):
    rng = np.random.default_rng(8)
    syllables = ["ka", "lo", "mi", "ra", "ten", "sul", "vor", "bel", "dan", "fir", "gus", "hal"]
    rows = []
    for person in range(300):
        first = "".join(rng.choice(syllables, 2))
        surname = "".join(rng.choice(syllables, 3))
        dob = str(np.datetime64("1950-01-01") + int(rng.integers(0, 15000)))
        for copy in range(int(rng.integers(1, 4))):
            rows.append({"unique_id": str(len(rows)), "first_name": first if copy < 2 else first[:-1],
                         "surname": surname, "dob": dob, "city": "york" if person % 2 else "leeds",
                         "email": f"{first}{person}@example.org", "cluster": str(person)})
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "fake_1000.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    args = argparse.Namespace(workdir=str(tmp_path / "work"), data=str(data), no_tf=False, splink_python=None)
    for name in ("fake_1000", "fake_1000-link"):
        result = harness.bench_one(harness.BENCHES[name], args)
        mine = result["matchkit"]
        assert result["true_pairs"] > 0
        assert mine["p"] >= 0.9 and mine["r"] >= 0.8, result
        if name == "fake_1000":
            assert mine["average_f1"] >= 0.8 and mine["cluster_f1"] >= 0.8
