"""Readers for raw extracts: CSV (UTF-8, UTF-8 with BOM, GB18030/GBK), XLSX and Parquet, streamed in chunks.

Every reader yields :class:`Chunk` objects holding the canonical columns as Python strings (never numbers: an
18-digit ID must not pass through a float), each row's input line number (the header is line 1, the first data row
line 2, in every format), and the rows it could not read at all (too few or too many fields) as rejects. Headers are
matched to the schema's canonical names and Chinese aliases; unknown columns are dropped unread so nothing that the
schema does not declare can reach an output.

Problems with a file as a whole raise :class:`InputFileError` naming the file and what is wrong; messages never
quote the file's content.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from matchkit.encode.chunk import Chunk
from matchkit.errors import InputFileError
from matchkit.schema import Schema, fold_header

DEFAULT_CHUNK_ROWS = 50_000
SNIFF_BYTES = 1 << 20
ENCODING_ALIASES = {
    "utf8": "utf-8", "utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "utf8-sig": "utf-8-sig", "gb18030": "gb18030",
    "gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030",
}


@dataclass
class InputSummary:
    format: str
    encoding: str | None
    headers: dict[str, str]


class RawReader:
    """Opens one input file for a schema and iterates its chunks."""

    def __init__(self, path: str | Path, schema: Schema, *, encoding: str = "auto",
                 chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        self.path = Path(path)
        self.schema = schema
        self.chunk_rows = chunk_rows
        self.block_bytes: int | None = None  # CSV block size; None = about chunk_rows lines (tests set it small)
        if not self.path.exists():
            raise InputFileError("input file not found", path=self.path)
        if not self.path.is_file():
            raise InputFileError("input is not a regular file", path=self.path)
        if self.path.stat().st_size == 0:
            raise InputFileError("input file is empty", path=self.path)
        self.format = detect_format(self.path)
        self.encoding: str | None = None
        if self.format == "csv":
            self.encoding = resolve_encoding(self.path, encoding)

    def chunks(self) -> Iterator[Chunk]:
        if self.format == "csv":
            yield from self._csv_chunks()
        elif self.format == "xlsx":
            yield from self._xlsx_chunks()
        else:
            yield from self._parquet_chunks()

    # --- header mapping ------------------------------------------------------------------------------------------
    def _map_headers(self, headers: list[str]) -> dict[int, str]:
        """Input column position -> canonical name; refuses duplicated and missing required columns."""
        known = self.schema.header_map()
        positions: dict[int, str] = {}
        seen: dict[str, int] = {}
        duplicated: list[str] = []
        for position, header in enumerate(headers):
            canonical = known.get(fold_header(str(header) if header is not None else ""))
            if canonical is None:
                continue
            if canonical in seen:
                duplicated.append(canonical)
                continue
            seen[canonical] = position
            positions[position] = canonical
        if duplicated:
            raise InputFileError(
                f"column(s) given more than once (by name or alias): {', '.join(sorted(set(duplicated)))}",
                path=self.path,
            )
        missing = [c.name for c in self.schema.columns if c.required and c.name not in seen]
        if missing:
            raise InputFileError(
                f"missing required column(s) for source '{self.schema.name}': {', '.join(missing)} "
                f"(found {len(headers)} column(s), {len(seen)} recognised)",
                path=self.path,
            )
        if not seen:
            raise InputFileError(f"no column matches the '{self.schema.name}' schema", path=self.path)
        return positions

    # --- CSV ----------------------------------------------------------------------------------------------------
    def _csv_chunks(self) -> Iterator[Chunk]:
        layout = self.csv_layout()
        for block in self.csv_blocks():
            yield parse_csv_block(layout, block)

    def csv_layout(self) -> CsvLayout:
        """What a worker needs to parse a block of this CSV on its own (no file handle, no secret)."""
        assert self.encoding is not None
        header_fields = self._csv_header()
        positions = self._map_headers(header_fields)
        codec = "utf-8-sig" if self.encoding in ("utf-8", "utf-8-sig") else self.encoding
        return CsvLayout(str(self.path), self.encoding, codec, len(header_fields), positions)

    def csv_blocks(self, spread: int = 1) -> Iterator[CsvBlock]:
        """The data lines after the header in blocks of whole lines (a quoted value never straddles two blocks),
        each with the line number of its first line, so blocks can be parsed anywhere, in any order.

        Blocks hold about ``chunk_rows`` lines, or less so that the file makes at least ``spread`` blocks (a pool of
        workers then shares a small file evenly, and the parent writes early blocks while later ones are encoded),
        but never less than 1 MiB."""
        largest = max(1 << 20, self.chunk_rows * 96)
        target = self.block_bytes or min(largest, max(1 << 20, self.path.stat().st_size // max(1, spread)))
        with open(self.path, "rb") as handle:
            pending = b""
            header_done = False
            next_line = 2
            while True:
                data = handle.read(target)
                buffer = pending + data
                if not header_done:
                    cut = safe_cut(buffer, first=True)
                    if cut < 0 and data:
                        pending = buffer
                        continue
                    buffer = buffer[cut + 1 :] if cut >= 0 else b""
                    header_done = True
                if not data:
                    if buffer.strip():
                        yield CsvBlock(buffer, next_line)
                    return
                cut = safe_cut(buffer)
                if cut < 0:
                    pending = buffer
                    continue
                block, pending = buffer[: cut + 1], buffer[cut + 1 :]
                yield CsvBlock(block, next_line)
                next_line += block.count(b"\n")

    def _csv_header(self) -> list[str]:
        assert self.encoding is not None
        with open(self.path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
        if b"\x00" in head:
            raise InputFileError("file contains NUL bytes: not a text CSV (binary or UTF-16?)", path=self.path)
        if b"\n" not in head and b"\r" in head.rstrip(b"\r"):  # rows are cut at LF: never read CR-only as 0 rows
            raise InputFileError("lines end in CR only (old Mac format); re-save the file with LF or CRLF line ends",
                                 path=self.path)
        codec = "utf-8-sig" if self.encoding in ("utf-8", "utf-8-sig") else self.encoding
        first_line = head.split(b"\n", 1)[0].split(b"\r", 1)[0]  # LF, CRLF or old-Mac CR line ends
        try:
            text = first_line.decode(codec)
        except UnicodeDecodeError as exc:
            raise InputFileError(f"header line is not valid {self.encoding}", path=self.path) from exc
        try:
            fields = next(csv.reader([text]), [])
        except csv.Error as exc:
            raise InputFileError("cannot parse the header line as CSV", path=self.path) from exc
        if not any(f.strip() for f in fields):
            raise InputFileError("no header line (the first line is empty)", path=self.path)
        return fields

    # --- XLSX ---------------------------------------------------------------------------------------------------
    def _xlsx_chunks(self) -> Iterator[Chunk]:
        try:
            import openpyxl
        except ImportError as exc:  # pragma: no cover - declared dependency
            raise InputFileError("reading XLSX needs openpyxl: pip install openpyxl", path=self.path) from exc
        try:
            workbook = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # a damaged zip/XML fails anywhere (zlib.error, ParseError, ...)
            raise InputFileError("not a readable XLSX workbook (corrupt or not an .xlsx file)", path=self.path) from exc
        try:
            sheet = workbook.worksheets[0]
            rows = sheet.iter_rows(values_only=True)
            try:
                header = next(rows)
            except StopIteration as exc:
                raise InputFileError("the first sheet is empty (no header row)", path=self.path) from exc
            headers = ["" if h is None else str(h) for h in header]
            positions = self._map_headers(headers)
            width = len(headers)
            buffer: dict[str, list[str]] = {name: [] for name in positions.values()}
            lines: list[int] = []
            rejects: list[tuple[int, str, str]] = []
            line = 1
            for row in rows:
                line += 1
                if row is None or all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
                    continue
                if len(row) > width and any(v is not None for v in row[width:]):
                    rejects.append((line, "", "wrong_field_count"))
                    continue
                for position, name in positions.items():
                    value = row[position] if position < len(row) else None
                    buffer[name].append(_cell_text(value))
                lines.append(line)
                if len(lines) >= self.chunk_rows:
                    yield _make_chunk(buffer, lines, rejects)
                    buffer = {name: [] for name in positions.values()}
                    lines, rejects = [], []
            if lines or rejects:
                yield _make_chunk(buffer, lines, rejects)
        except InputFileError:
            raise
        except Exception as exc:  # a damaged zip/XML fails anywhere (zlib.error, ParseError, ...)
            raise InputFileError("XLSX workbook is corrupt or truncated", path=self.path) from exc
        finally:
            workbook.close()

    # --- Parquet ------------------------------------------------------------------------------------------------
    def _parquet_chunks(self) -> Iterator[Chunk]:
        try:
            parquet = pq.ParquetFile(self.path)
            metadata = parquet.metadata.metadata or {}
            names = parquet.schema_arrow.names
        except Exception as exc:  # a damaged footer fails in any decoder (e.g. UnicodeDecodeError)
            raise InputFileError("not a readable Parquet file (corrupt or truncated)", path=self.path) from exc
        if b"matchkit.manifest" in metadata:
            raise InputFileError("this is already a matchkit hashed file; give the raw extract", path=self.path)
        positions = self._map_headers(names)
        next_line = 2
        try:
            for batch in parquet.iter_batches(batch_size=self.chunk_rows, columns=[names[p] for p in positions]):
                columns = {}
                for position, canonical in positions.items():
                    columns[canonical] = _arrow_to_text(batch.column(names[position]))
                lines = np.arange(next_line, next_line + batch.num_rows, dtype=np.int64)
                next_line += batch.num_rows
                yield Chunk(columns, lines)
        except Exception as exc:  # damaged pages fail in any decoder (ArrowException, ...)
            raise InputFileError("Parquet file is corrupt or truncated", path=self.path) from exc


def _make_chunk(buffer: dict[str, list[str]], lines: list[int], rejects: list[tuple[int, str, str]]) -> Chunk:
    columns = {name: np.array(values, dtype=object) for name, values in buffer.items()}
    return Chunk(columns, np.asarray(lines, dtype=np.int64), list(rejects))


def _cell_text(value: object) -> str:
    """An XLSX cell as text. Numbers that are whole and exact stay whole; floats too large to be exact keep their
    float form, which the ID normaliser recognises as Excel damage rather than guessing digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _arrow_to_text(column: pa.Array) -> np.ndarray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.fill_null("").to_numpy(zero_copy_only=False)
    return np.array([_cell_text(v) for v in column.to_pylist()], dtype=object)


@dataclass(frozen=True)
class CsvLayout:
    path: str
    encoding: str
    codec: str
    width: int
    positions: dict[int, str]


@dataclass(frozen=True)
class CsvBlock:
    data: bytes
    first_line: int


def safe_cut(buffer: bytes, *, first: bool = False) -> int:
    """Index of the newline that ends the last complete record in ``buffer`` (the first one when ``first``), or -1.

    A newline inside a quoted value is not a record end: there the count of quote characters before it is odd
    (an escaped quote ``""`` counts two, so parity is exact).
    """
    if first:
        position = buffer.find(b"\n")
        while position >= 0 and buffer.count(b'"', 0, position) % 2:
            position = buffer.find(b"\n", position + 1)
        return position
    position = buffer.rfind(b"\n")
    quotes = buffer.count(b'"', 0, position) if position >= 0 else 0
    while position >= 0 and quotes % 2:
        previous = buffer.rfind(b"\n", 0, position)
        quotes -= buffer.count(b'"', previous + 1 if previous >= 0 else 0, position)
        position = previous
    return position


def parse_csv_block(layout: CsvLayout, block: CsvBlock, *, fast: bool = True) -> Chunk:
    """Parse one block of whole CSV lines into a chunk; line numbers are exact physical line numbers.

    Clean UTF-8 blocks (every line one record: no blank line, no line break inside quotes, every row the right
    width) are parsed by pyarrow's C++ reader; anything else by the ``csv`` module, which tracks lines exactly.
    ``tests/test_csv_blocks.py`` checks that both give the same chunk.
    """
    if fast and layout.codec in ("utf-8", "utf-8-sig"):
        chunk = _parse_clean_utf8(layout, block)
        if chunk is not None:
            return chunk
    elif fast and layout.codec == "gb18030":
        # GB18030 text takes the same C++ path once recoded to UTF-8: its multi-byte sequences never contain a
        # newline, carriage return or quote byte (trail bytes are 0x30-0x39 or 0x40-0xFE), so the recoded block has
        # the same lines, quotes and fields. A block that does not decode takes the careful path, which names the line.
        try:
            recoded = block.data.decode("gb18030").encode("utf-8")
        except UnicodeDecodeError:
            recoded = None
        if recoded is not None:
            chunk = _parse_clean_utf8(layout, CsvBlock(recoded, block.first_line))
            if chunk is not None:
                return chunk
    path = Path(layout.path)
    codec = "utf-8" if layout.codec == "utf-8-sig" else layout.codec
    try:
        text = block.data.decode(codec)
    except UnicodeDecodeError as exc:
        line = block.first_line + block.data.count(b"\n", 0, exc.start)
        raise InputFileError(
            f"line {line} has bytes that are not valid {layout.encoding} (mixed or wrong encoding); "
            "re-save the file in one encoding or pass --encoding", path=path) from exc
    if "\x00" in text:
        line = block.first_line + text.count("\n", 0, text.index("\x00"))
        raise InputFileError(f"line {line} contains NUL bytes: not a text CSV", path=path)
    width = layout.width
    rows: list[list[str]] = []
    lines: list[int] = []
    rejects: list[tuple[int, str, str]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    offset = block.first_line - 1
    line_before = 0
    try:
        for row in reader:
            line = offset + line_before + 1  # the physical line on which this record starts
            line_before = reader.line_num
            if len(row) != width:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line is not a row
                if len(row) < width or any(v.strip() for v in row[width:]):
                    rejects.append((line, "", "wrong_field_count"))
                    continue
                row = row[:width]
            rows.append(row)
            lines.append(line)
    except csv.Error as exc:
        problem = str(exc).split(":", 1)[0]
        raise InputFileError(f"cannot parse CSV at line {offset + line_before + 1} ({problem})", path=path) from exc
    columns: dict[str, np.ndarray] = {}
    transposed = list(zip(*rows)) if rows else [()] * width
    for position in sorted(layout.positions):
        array = np.empty(len(rows), dtype=object)
        array[:] = transposed[position]
        columns[layout.positions[position]] = array
    return Chunk(columns, np.asarray(lines, dtype=np.int64), rejects)


def _parse_clean_utf8(layout: CsvLayout, block: CsvBlock) -> Chunk | None:
    """The pyarrow path for a block whose lines are all records, or None when the block needs the careful path."""
    data = block.data
    raw = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(raw == 10)
    if len(newlines) == 0 or newlines[-1] != len(raw) - 1 or b"\x00" in data:
        return None
    starts = np.concatenate(([0], newlines[:-1] + 1))
    lengths = newlines - starts
    if (lengths == 0).any() or ((lengths == 1) & (raw[np.maximum(newlines - 1, 0)] == 13)).any():
        return None  # a blank line: not a row, so it must not shift the numbering
    if lengths.max() > csv.field_size_limit():
        return None  # a gigantic line: the careful path refuses an oversized field by name
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None  # the careful path names the line with the undecodable bytes
    quotes = raw == 34
    if quotes.any() and (np.cumsum(quotes)[newlines] % 2).any():
        return None  # a line break inside a quoted value
    bad_rows: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_rows.append(1)
        return "skip"

    names = [f"c{i}" for i in range(layout.width)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=max(len(data), 1 << 16)),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                include_columns=[names[p] for p in sorted(layout.positions)],
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if bad_rows or table.num_rows != len(newlines):
        return None
    columns = {layout.positions[int(name[1:])]: table.column(name).to_numpy(zero_copy_only=False)
               for name in table.column_names}
    lines = np.arange(block.first_line, block.first_line + table.num_rows, dtype=np.int64)
    return Chunk(columns, lines, [])


def detect_format(path: Path) -> str:
    """``csv``, ``xlsx`` or ``parquet`` from the file's first bytes (the extension may lie)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        raise InputFileError("has an .xlsx name but is not an XLSX workbook (corrupt?)", path=path)
    if suffix == ".parquet":
        raise InputFileError("has a .parquet name but is not a Parquet file (corrupt?)", path=path)
    return "csv"


def resolve_encoding(path: Path, requested: str = "auto") -> str:
    """The CSV text encoding: the requested one, or detected (BOM → UTF-8; valid UTF-8 → UTF-8; else GB18030)."""
    if requested and requested != "auto":
        codec = ENCODING_ALIASES.get(requested.lower().replace("_", "-"))
        if codec is None:
            try:
                codec = codecs.lookup(requested).name
            except LookupError as exc:
                raise InputFileError(f"unknown encoding {requested!r}", path=path) from exc
        return codec
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if b"\x00" in head:
        raise InputFileError("file contains NUL bytes: not a text CSV (binary, or UTF-16?)", path=path)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if _decodes(head, "utf-8"):
        return "utf-8"
    if _decodes(head, "gb18030"):
        return "gb18030"
    raise InputFileError("text is neither UTF-8 nor GB18030; pass --encoding", path=path)


def _decodes(sample: bytes, codec: str) -> bool:
    decoder = codecs.getincrementaldecoder(codec)()
    try:
        decoder.decode(sample, final=False)  # a multi-byte character cut at the sample's end is not an error
    except UnicodeDecodeError:
        return False
    return True
