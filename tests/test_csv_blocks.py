"""CSV block splitting: any block size gives the same rows, line numbers and rejects as one block."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from matchkit.io.readers import RawReader, parse_csv_block
from matchkit.schema import load_schema

HEADER = "student_id,student_name,education_stage,enrolled_from\n"
LINE = st.one_of(
    st.builds(lambda i: f"1101051949123100{i % 10},名{i},compulsory,2021-09\n", st.integers(0, 99)),
    st.just("\n"),                                   # blank line: not a row
    st.just("x,y\n"),                                # too few fields
    st.just('"a\nb","多行\n名字",higher,2020-09\n'),  # quoted newlines inside values
    st.just('"say ""hi""",n,higher,2020-09\n'),      # escaped quotes
)


def parse_all(path, block_bytes=None):
    reader = RawReader(path, load_schema("education"))
    reader.block_bytes = block_bytes
    layout = reader.csv_layout()
    names, lines, rejects, blocks = [], [], [], 0
    for block in reader.csv_blocks():
        blocks += 1
        chunk = parse_csv_block(layout, block)
        names += chunk.columns["student_name"].tolist()
        lines += chunk.lines.tolist()
        rejects += chunk.rejects
    return names, lines, rejects, blocks


@settings(max_examples=80)
@given(st.lists(LINE, min_size=1, max_size=60), st.integers(1, 300))
def test_any_block_size_agrees_with_one_block(tmp_path_factory, lines, block_bytes):
    path = tmp_path_factory.mktemp("csv") / "in.csv"
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    assert parse_all(path, block_bytes)[:3] == parse_all(path)[:3]


def test_line_numbers_with_quoted_newlines_and_blanks(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + '1,"a\nb",higher,2020-09\n\n2,c,higher,2020-09\nx,y\n', encoding="utf-8")
    names, lines, rejects, _ = parse_all(path, 5)
    assert names == ["a\nb", "c"] and lines == [2, 5] and rejects == [(6, "", "wrong_field_count")]


def test_many_blocks_keep_exact_lines(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "".join(f'{i},"n\n{i}",higher,2020-09\n' for i in range(5000)), encoding="utf-8")
    names, lines, _, blocks = parse_all(path, 4096)
    assert blocks > 10
    assert len(names) == 5000 and lines[:3] == [2, 4, 6] and lines[-1] == 2 + 2 * 4999
    assert names[4999] == "n\n4999"


@settings(max_examples=100)
@given(st.lists(st.one_of(LINE, st.just('"q1","引号",higher,"2020-09"\n'), st.just("a,b,c,d,\n"),
                          st.just("1,n,higher,2020-09\r\n")), min_size=1, max_size=40))
def test_fast_and_careful_paths_agree(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("csv") / "in.csv"
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    reader = RawReader(path, load_schema("education"))
    layout = reader.csv_layout()
    for block in reader.csv_blocks():
        fast = parse_csv_block(layout, block)
        careful = parse_csv_block(layout, block, fast=False)
        assert fast.lines.tolist() == careful.lines.tolist()
        assert fast.rejects == careful.rejects
        assert {k: v.tolist() for k, v in fast.columns.items()} == {k: v.tolist() for k, v in careful.columns.items()}


def test_fast_path_is_taken_for_clean_blocks(tmp_path):
    from matchkit.io.readers import _parse_clean_utf8

    path = tmp_path / "in.csv"
    path.write_text(HEADER + "".join(f'"{i}",n{i},higher,2020-09\n' for i in range(100)), encoding="utf-8")
    reader = RawReader(path, load_schema("education"))
    block = next(reader.csv_blocks())
    assert _parse_clean_utf8(reader.csv_layout(), block) is not None


GB_LINE = st.one_of(
    LINE,
    st.builds(lambda name: f"11010519491231002X,{name},higher,2020-09\n",
              st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=4)),
    st.just("1,𠀀丂,higher,2020-09\n"),               # four-byte GB18030 sequences
    st.just("1,n,higher,2020-09\r\n"),
)


@settings(max_examples=100)
@given(st.lists(GB_LINE, min_size=1, max_size=40), st.integers(1, 200))
def test_gb18030_fast_and_careful_paths_agree(tmp_path_factory, lines, block_bytes):
    """A GB18030 block recoded to UTF-8 for the C++ parser gives what the csv module gives on the decoded text."""
    path = tmp_path_factory.mktemp("csv") / "in.csv"
    path.write_bytes((HEADER + "".join(lines)).encode("gb18030"))
    reader = RawReader(path, load_schema("education"), encoding="gb18030")
    reader.block_bytes = block_bytes
    layout = reader.csv_layout()
    assert layout.codec == "gb18030"
    for block in reader.csv_blocks():
        fast = parse_csv_block(layout, block)
        careful = parse_csv_block(layout, block, fast=False)
        assert fast.lines.tolist() == careful.lines.tolist()
        assert fast.rejects == careful.rejects
        assert {k: v.tolist() for k, v in fast.columns.items()} == {k: v.tolist() for k, v in careful.columns.items()}


def test_gb18030_fast_path_is_taken(tmp_path, monkeypatch):
    from matchkit.io import readers

    path = tmp_path / "in.csv"
    path.write_bytes((HEADER + "".join(f"{i},张{i},higher,2020-09\n" for i in range(100))).encode("gb18030"))
    reader = RawReader(path, load_schema("education"), encoding="gb18030")
    calls = []
    original = readers._parse_clean_utf8
    monkeypatch.setattr(readers, "_parse_clean_utf8", lambda *a: calls.append(1) or original(*a))
    chunk = parse_csv_block(reader.csv_layout(), next(reader.csv_blocks()))
    assert calls and chunk.columns["student_name"].tolist()[:2] == ["张0", "张1"]
