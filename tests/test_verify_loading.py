"""Verify at scale reads hashed files lazily (issue 3): Arrow-backed token columns, person encodings streamed and
only the default linker's candidates materialised. Every way of handing verify the same data must give the same
flags: lazy HashedExtract, Arrow-backed DataFrames, plain object DataFrames (bytes and lists per cell), and a
custom linker that sees every person."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from matchkit.jobs.hash import hash_file
from matchkit.jobs.verify import load_hashed_inputs
from matchkit.link.blocking import SharedKeys, block
from matchkit.link.fuzzy import PERSON_PASSES, best_links
from matchkit.link.token_columns import TokenFrame
from matchkit.security.keys import SharedKey
from matchkit.synth import generate
from matchkit.verify import HashedExtract, verify_tables
from matchkit.verify.interning import intern_words, token_words

EXTRACTS = ("education", "household", "civil_affairs", "only_child", "medical_insurance")


@pytest.fixture(scope="module")
def hashed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], Path]:
    raw = tmp_path_factory.mktemp("raw")
    out = tmp_path_factory.mktemp("hashed")
    paths = generate(600, 5, raw, noise=0.5, formats="csv", defect_rate=0.3)
    key = SharedKey("mk-test", bytes(range(32)))
    for source in ("claims", *EXTRACTS):
        hash_file(source, paths[source], key, out / f"{source}.parquet", workers=1)
    return out / "claims.parquet", [out / f"{s}.parquet" for s in EXTRACTS], paths["truth"]


def _objects(frame: pd.DataFrame) -> pd.DataFrame:
    """The same table as the notebook API would hold it: bytes and Python lists per cell, NumPy scalars."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.to_pandas(ignore_metadata=True)


def test_lazy_encodings_equal_full_tables_and_object_tables(hashed) -> None:
    claims_path, extract_paths, truth_path = hashed
    claims, sources, _ = load_hashed_inputs(claims_path, extract_paths)
    assert all(isinstance(s, HashedExtract) for s in sources.values())
    assert "household_parent_name_fz" not in sources["household"].frame.columns  # not loaded up front
    lazy = verify_tables(claims, sources)

    claims_full, full_sources, _ = load_hashed_inputs(claims_path, extract_paths, lazy_encodings=False)
    assert all(isinstance(s, pd.DataFrame) for s in full_sources.values())
    assert isinstance(full_sources["household"]["parent_name_fz"].dtype, pd.ArrowDtype)
    pd.testing.assert_frame_equal(lazy, verify_tables(claims_full, full_sources))

    object_sources = {name: _objects(frame) for name, frame in full_sources.items()}
    assert isinstance(object_sources["household"]["parent_id_tok"].iloc[0], bytes)
    pd.testing.assert_frame_equal(lazy, verify_tables(_objects(claims_full), object_sources))

    # A linker the engine does not know sees every person (no candidate filter): the same links.
    def wrapped(queries: pd.DataFrame, persons: pd.DataFrame) -> pd.DataFrame:
        wrapped.persons = max(getattr(wrapped, "persons", 0), len(persons))
        return best_links(queries, persons)

    pd.testing.assert_frame_equal(lazy, verify_tables(claims, sources, linker=wrapped))
    assert wrapped.persons > 1000  # every person of the universe, not only the candidates

    truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False)
    joined = truth.merge(lazy, on="claim_id")
    assert len(joined) == len(truth)
    assert (joined["status"] == joined["expected_status"]).all()
    assert (lazy["match"] == "fuzzy").sum() > 5


def test_shared_keys_keep_every_pair_block_finds() -> None:
    rng = np.random.default_rng(3)

    def people(n: int) -> pd.DataFrame:
        return pd.DataFrame({
            "id_near": [list(rng.integers(0, 40, 4)) if rng.random() > 0.1 else None for _ in range(n)],
            "name_fz": [list(rng.integers(0, 60, rng.integers(1, 5))) for _ in range(n)],
            "dob_tok": [None] * n,
        })

    left, right = people(30), people(400)
    keys = SharedKeys(left, PERSON_PASSES)
    kept = keys.kept(right)
    assert 0 < kept.sum() < len(right)
    whole = block(left, right, PERSON_PASSES, max_block_size=20)
    part = block(left, TokenFrame(right[kept].reset_index(drop=True)), PERSON_PASSES, max_block_size=20)
    positions = np.flatnonzero(kept)
    assert np.array_equal(whole.left, part.left) and np.array_equal(whole.right, positions[part.right])
    assert whole.passes == part.passes


def test_token_words_from_arrow_equal_bytes() -> None:
    tokens = [bytes(range(i, i + 16)) for i in range(5)] + [None]
    arrow = pd.Series(pd.arrays.ArrowExtensionArray(pa.array(tokens, pa.binary(16))))
    objects = pd.Series(tokens, dtype=object)
    words_a, present_a = token_words(arrow, name="a")
    words_o, present_o = token_words(objects, name="o")
    assert np.array_equal(present_a, present_o)
    assert np.array_equal(words_a[present_a], words_o[present_o])
    sliced = pd.Series(pd.arrays.ArrowExtensionArray(pa.array(tokens, pa.binary(16)).slice(2)))
    assert np.array_equal(token_words(sliced, name="s")[0][:3], words_o[2:5])


def test_interning_is_exact_when_first_words_collide() -> None:
    words = np.array([[1, 2], [3, 4], [1, 2], [1, 5], [3, 4], [1, 5]], dtype=np.int64)
    codes, size = intern_words(words)
    assert size == 3
    assert codes[0] == codes[2] and codes[3] == codes[5] and codes[1] == codes[4]
    assert len({codes[0], codes[1], codes[3]}) == 3
    codes, size = intern_words(np.array([[7, 1], [8, 1], [7, 1]], dtype=np.int64))
    assert size == 2 and codes.tolist() == [0, 1, 0]
