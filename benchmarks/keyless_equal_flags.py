"""Keyless flags against shared-key flags on one synth population (run from the repo root: python benchmarks/keyless_equal_flags.py)."""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, ".")
import pandas as pd

from matchkit.cli.main import main
from tests.test_keyless_synth import FLAG_COLUMNS, keyless_flags, shared_flags


def run():
    d = Path(tempfile.mkdtemp(prefix="merge13_nm_"))
    data = d / "data"; data.mkdir()
    assert main(["synth", "--claims", "1500", "--seed", "7", "--out", str(data), "--formats", "csv", "--defect-rate", "0.3"]) == 0
    (d/"s").mkdir(); (d/"k").mkdir()
    s = shared_flags(data, d/"s"); k = keyless_flags(data, d/"k", 2024)
    pd.testing.assert_frame_equal(s[FLAG_COLUMNS].reset_index(drop=True), k[FLAG_COLUMNS].reset_index(drop=True))
    print("equal lines:", len(s), "NAME_MISMATCH lines:", k["reasons"].fillna("").str.contains("NAME_MISMATCH").sum(),
          "fuzzy:", (k["match"]=="fuzzy").sum())

if __name__ == '__main__':
    run()
