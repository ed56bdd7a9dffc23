"""The batched forms of the mk1 encoders (used by the hashing inner loop) equal the per-value reference forms."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from matchkit.encode.person import Encoder, name_variants
from matchkit.encode.person_table import _id_bodies, _name_parts_or_fault, _name_problem
from matchkit.normalize import names
from matchkit.security.keys import SharedKey

ENCODER = Encoder(SharedKey("mk-fast", bytes(range(32))), "iit-special-deduction", "mk1")
_cjk = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
_names = st.one_of(st.text(_cjk, min_size=1, max_size=4), st.text(max_size=6),
                   st.sampled_from(["張偉", "张伟", "曾小明", "欧阳娜娜", "阿卜杜·艾买提", "Li Ming", "", " ", "王*"]))


@settings(max_examples=60)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["RID:11010519491231002X", "passport:E1", "RID:x"]),
                          st.text(max_size=8)), max_size=30))
def test_id_token_array_equals_id_tokens(canonicals):
    column = ENCODER.id_token_array(pa.array(canonicals, type=pa.string()))
    assert column.type == pa.binary(16)
    assert column.to_pylist() == ENCODER.id_tokens(canonicals)


@given(st.lists(st.one_of(st.just(0), st.integers(19000101, 20991231)), max_size=30))
def test_dob_token_array_equals_dob_token(salts):
    column = ENCODER.dob_token_array(np.array(salts, dtype=np.int64))
    assert column.to_pylist() == [ENCODER.dob_token(s) if s else None for s in salts]


@settings(max_examples=60)
@given(st.lists(_names, max_size=20), st.data())
def test_name_paths_equal_the_reference(raw_names, data):
    """Digests per name (pinyin-tail memo), fuzzy tokens by code, and the name fault checks."""
    distinct = list(dict.fromkeys(raw_names))
    rows = []
    for raw in distinct:
        parts = _name_parts_or_fault(raw)
        normalised = names.normalize_name(raw)
        if isinstance(parts, tuple):
            assert parts == (normalised, names.name_pinyin(normalised))
            digests = ENCODER.name_digests_of(*parts)
            assert digests == ENCODER.name_digests(name_variants(*parts))
            rows.append(digests)
        else:
            rows.append(b"")
        if type(raw) is str and raw.strip():
            assert _name_problem(raw) == names.name_problem(raw)
    codes = np.array(data.draw(st.lists(st.integers(0, max(len(distinct) - 1, 0)), max_size=25))
                     if distinct else [], dtype=np.int64)
    salts = np.array(data.draw(st.lists(st.integers(0, 20991231), min_size=len(codes), max_size=len(codes))),
                     dtype=np.int64)
    tokens, counts = ENCODER.name_fuzzy_by_code(rows, codes, salts)
    expected_tokens, expected_counts = ENCODER.name_fuzzy_arrays([rows[c] for c in codes.tolist()], salts)
    assert counts.tolist() == expected_counts.tolist()
    assert tokens.tolist() == expected_tokens.tolist()


def test_id_bodies_and_near_tokens():
    values = np.array(["11010519491231002X", "110105194912310020", "440524188001010014"], dtype=object)
    assert ENCODER.id_near_tokens_ascii(_id_bodies(values)).tolist() == \
        ENCODER.id_near_tokens([v[:17] for v in values]).tolist()
    assert _id_bodies(np.array([], dtype=object)) == b""
