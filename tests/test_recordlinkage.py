"""``matchkit.recordlinkage``: a recordlinkage user's workflow on hashed files, end to end on FEBRL-like data
hashed with matchkit (blocking on keyed passes, features over tokens and Bloom filters, ECM finds the links), and
the clear message when the extra is missing. recordlinkage is an optional extra that needs pandas<3: the tests that
use it skip without it (.ci/run runs this file again in a venv with ``.[test,recordlinkage]``); reading hashed
files and the missing-extra message are tested everywhere."""

from __future__ import annotations

import builtins
import importlib
import sys

import numpy as np
import pytest

import matchkit.recordlinkage as hashed_rl  # HashedBlock, HashedDice, HashedExact: made on first use
from matchkit.errors import ManifestError, MatchkitError
from matchkit.recordlinkage import compare_features, read_hashed
from tests.test_link_job import FEBRL, education_file, toy  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def rl():  # type: ignore[no-untyped-def]
    return pytest.importorskip("recordlinkage")


@pytest.fixture(scope="module")
def frames(toy, tmp_path_factory):  # noqa: F811
    """The FEBRL-like toy files hashed with the FEBRL schema plus a broad pass on the state, so the candidates
    hold non-matches too (the toy's made-up values are so distinct that every other pass finds only the true
    pairs, and ECM needs both classes)."""
    from tests.test_link_job import run_cli

    folder = tmp_path_factory.mktemp("rl")
    schema = folder / "febrl_state.toml"
    schema.write_text(FEBRL.read_text(encoding="utf-8") + '\n[[blocking]]\nname = "state"\nkeys = ["state"]\n',
                      encoding="utf-8")
    for side in ("left", "right"):
        code, _, err = run_cli(["hash", schema, toy["folder"] / f"{side}.csv", "--key", toy["key"], "-o",
                                folder / f"{side}.parquet"])
        assert code == 0, err
    return read_hashed(folder / "left.parquet"), read_hashed(folder / "right.parquet")


def test_read_hashed_is_indexed_by_record_id(frames, toy):  # noqa: F811
    left, _ = frames
    assert left.index.name == "rec_id" and left.index.is_unique
    assert list(left.index[:3]) == [row["rec_id"] for row in toy["left_rows"][:3]]
    assert {"given_name_tok", "given_name_bf", "_blk_ssid"} <= set(left.columns)
    assert "_line" not in left.columns
    assert str(left["_blk_ssid"].dtype) == "Int64"  # 64-bit keys kept exactly (a float would round them)
    assert left.attrs["matchkit_manifest"]["kind"] == "link"


def test_ecm_finds_the_links(rl, frames, toy):  # noqa: F811
    left, right = frames
    indexer = rl.Index()
    for name in ("ssid", "state"):
        indexer.add(hashed_rl.HashedBlock(name))
    pairs = indexer.index(left, right)
    assert len(pairs) > 20 * len(toy["truth"])
    features = rl.Compare(compare_features(left)).compute(pairs, left, right)
    assert list(features.columns) == list(left.attrs["matchkit_manifest"]["fields"])
    assert set(np.unique(features.to_numpy())) <= {0.0, 1.0}
    links = rl.ECMClassifier().fit_predict(features)
    found = set(zip(links.get_level_values(0), links.get_level_values(1)))
    truth = toy["truth"]
    assert len(found & truth) / len(found) >= 0.95
    assert len(found & truth) / len(truth) >= 0.9


def test_hashed_block_matches_the_pass(rl, frames):
    left, right = frames
    indexer = rl.Index()
    indexer.add(hashed_rl.HashedBlock("ssid"))
    pairs = indexer.index(left, right)
    keys_left = left["_blk_ssid"].reindex(pairs.get_level_values(0)).to_numpy()
    keys_right = right["_blk_ssid"].reindex(pairs.get_level_values(1)).to_numpy()
    assert len(pairs) > 0 and (keys_left == keys_right).all()
    shared = set(left["_blk_ssid"].dropna()) & set(right["_blk_ssid"].dropna())
    expected = sum(int((left["_blk_ssid"] == k).sum()) * int((right["_blk_ssid"] == k).sum()) for k in shared)
    assert len(pairs) == expected


def test_dedup_index_is_each_pair_once(rl, frames):
    left, _ = frames
    both = left.iloc[:50]
    doubled = both.copy()
    doubled.index = [f"{i}-copy" for i in doubled.index]
    one_file = __import__("pandas").concat([both, doubled])
    indexer = rl.Index()
    indexer.add(hashed_rl.HashedBlock("ssid"))
    pairs = indexer.index(one_file)
    assert len(pairs) == 50
    assert all(a != b for a, b in pairs)


def test_features_by_hand(rl, frames):
    left, right = frames
    index = rl.Index()
    index.add(hashed_rl.HashedBlock("ssid"))
    pairs = index.index(left, right)
    features = [hashed_rl.HashedDice("surname"), hashed_rl.HashedExact("state"),
                hashed_rl.HashedDice("surname", threshold=0.9, label="surname_cut")]
    similarity = rl.Compare(features).compute(pairs, left, right)
    assert ((similarity["surname"] >= 0) & (similarity["surname"] <= 1)).all()
    assert similarity["surname"].nunique() > 2  # a similarity, not a flag
    assert ((similarity["surname_cut"] == 1) == (similarity["surname"] >= 0.9)).all()
    states_equal = (left["state_tok"].reindex(pairs.get_level_values(0)).to_numpy()
                    == right["state_tok"].reindex(pairs.get_level_values(1)).to_numpy())
    assert (similarity["state"].to_numpy() == states_equal.astype(float)).all()


def test_unknown_pass_is_named(rl, frames):
    left, right = frames
    indexer = rl.Index()
    indexer.add(hashed_rl.HashedBlock("nope"))
    with pytest.raises(MatchkitError, match="no blocking pass 'nope'.*ssid"):
        indexer.index(left, right)


def test_read_hashed_refuses_a_source_file(education_file):  # noqa: F811
    with pytest.raises(ManifestError, match="not a linkage file"):
        read_hashed(education_file)


def test_missing_extra_names_it(monkeypatch):
    import matchkit.recordlinkage as module

    real_import = builtins.__import__

    def no_recordlinkage(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "recordlinkage" or name.startswith("recordlinkage."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    for name in [n for n in sys.modules if n == "recordlinkage" or n.startswith("recordlinkage.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", no_recordlinkage)
    monkeypatch.setattr(module, "_CLASSES", {})
    monkeypatch.setattr(importlib, "import_module", lambda name, *a: no_recordlinkage(name))
    with pytest.raises(ImportError, match=r"pip install 'matchkit\[recordlinkage\]'"):
        module.compare_features(__import__("pandas").DataFrame({"a_tok": [b"x"]}))
    with pytest.raises(ImportError, match="recordlinkage"):
        module.__getattr__("HashedBlock")
