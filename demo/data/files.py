"""Data files (CSV, TSV, JSON, JSON lines, parquet, .txt) read as plain text, checked row by row.

One reader for the distillation CLI, the evaluator, the Evaluate tab and the benchmark: the same
file gets the same message everywhere. Files are parsed as text only (never unpickled).

TSV comes two ways, GLUE style (no quoting, bare quotes inside text) and CSV-quoted (fields
spanning lines, holding tabs and doubled quotes); `quoting="auto"` tells them apart, "none" and
"csv" say which. CSV, TSV and JSON are parsed here, with Python's csv and json modules, so that a
bad row is named by its line; parquet goes through `datasets`, and so does a file read as a stream
(streams.py).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from demo.core.errors import UserError

MAX_FILE_BYTES = 50 * 1024 * 1024  # larger files are refused (offer --max-rows for a sample instead)
MAX_TEXT_FILE_BYTES = 2 * 1024**3  # unlabelled transfer text may be large: it is only held as strings
QUOTING = ("auto", "none", "csv")  # how CSV/TSV fields are quoted: detected, GLUE-style none, or CSV quoting
TEXT_COLUMNS = ("text", "sentence", "content", "review", "document", "utterance", "tweet")
LABEL_COLUMNS = ("label", "labels", "target", "class", "category", "emotion", "sentiment")
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class DataError(UserError, ValueError):
    """A data file the run cannot use, with what to change."""


@dataclass(frozen=True)
class ReadLimits:
    """What one file may cost to read, checked where it is read, before anything is built from it: its rows
    and columns once decoded (a small parquet file can decompress to gigabytes), and the characters of any
    one cell. The CLI reads its own files with the defaults; the app passes its visitors' tighter ones."""

    max_rows: int | None = None  # rows in the file; None: the byte cap alone (the CLI's own transfer text is large)
    max_columns: int = 1_000
    max_cell_chars: int = 1_000_000  # one cell; the app's default is 20,000, the length its text boxes take
    max_decoded_ratio: float = 4.0  # a parquet file's data, decompressed, at most this many times its size cap

    def check_shape(self, name: str, rows: int, columns: int) -> None:
        if columns > self.max_columns:
            raise DataError(f"{name}: {columns:,} columns; this app reads files of up to {self.max_columns:,} "
                            "columns (a text column and a label column are all it needs).")
        if self.max_rows is not None and rows > self.max_rows:
            raise DataError(f"{name}: {rows:,} rows; this app reads up to {self.max_rows:,} rows of a file: take a "
                            "sample of it.")

    def check_cells(self, name: str, rows: list[dict]) -> None:
        for number, row in enumerate(rows, 1):
            for column, value in row.items():
                if isinstance(value, str) and len(value) > self.max_cell_chars:
                    raise DataError(f"{name}: row {number}, column {cut(str(column), 40)!r} holds {len(value):,} "
                                    f"characters; this app reads cells of up to {self.max_cell_chars:,}: shorten "
                                    "that text.")


DEFAULT_LIMITS = ReadLimits()
PAGE_LIMITS = ReadLimits(max_rows=100_000, max_cell_chars=20_000)  # a visitor's file (app.py's flags change them)


def cut(text: str, limit: int) -> str:
    """text, or its first `limit` characters and how many more there were."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def listed(items: list[str], limit: int = 12) -> str:
    """"a, b, c" or "a, b, … and 999,988 more": a message names a few of many, never all of them."""
    shown = ", ".join(cut(str(i), 40) for i in items[:limit])
    return shown + (f", … and {len(items) - limit:,} more" if len(items) > limit else "")


@dataclass
class LabelledData:
    texts: list[str]
    labels: list[str]
    source: str
    text_column: str
    label_column: str
    columns: list[str] = field(default_factory=list)
    total_rows: int = 0  # rows in the file, before any --max-rows sample

    def __len__(self) -> int:
        return len(self.texts)


# File suffix -> how it is parsed. Labelled data may come in any of these but .txt (no columns).
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".parquet": "parquet", ".txt": "txt"}
LABELLED_SUFFIXES = tuple(s for s, kind in FORMATS.items() if kind != "txt")


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    raise DataError(f"{path.name}: unknown file type {suffix or '(none)'}; use {', '.join(LABELLED_SUFFIXES)} "
                    "(or .txt, one text per line, where no labels are needed).")


def check_quoting(quoting: str) -> None:
    if quoting not in QUOTING:
        raise DataError(f"--quoting {quoting!r}: use auto (detect), none (GLUE-style TSV) or csv (CSV quoting).")


def read_rows(path: str | Path, max_bytes: int = MAX_FILE_BYTES, quoting: str = "auto",
              limits: ReadLimits = DEFAULT_LIMITS) -> tuple[list[str], list[dict]]:
    """Columns and rows of a file, within limits. Raises DataError for anything unreadable or past them."""
    columns, rows = _read_rows(path, max_bytes, quoting, limits)
    limits.check_shape(Path(path).name, len(rows), len(columns))
    limits.check_cells(Path(path).name, rows)
    return columns, rows


def _read_rows(path: str | Path, max_bytes: int, quoting: str, limits: ReadLimits) -> tuple[list[str], list[dict]]:
    check_quoting(quoting)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    kind = file_format(path)
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path.name}: the file is empty.")
    if size > max_bytes:
        raise DataError(f"{path.name}: {size / 1e6:.0f} MB is over the {max_bytes / 1e6:.0f} MB limit; "
                        "take a sample of it (e.g. the first N rows) and try again.")
    if kind == "parquet":
        return _parquet_rows(path, int(max_bytes * limits.max_decoded_ratio), limits)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    if kind == "txt":  # one text per line, no header: a column named "text"
        rows = [{"text": line} for line in text.splitlines() if line.strip()]
        if not rows:
            raise DataError(f"{path.name}: the file has no text.")
        return ["text"], rows
    if kind in ("csv", "tsv"):
        if quoting == "auto":
            quoting = "csv" if kind == "csv" else "auto"
        return _delimited_rows(text, path.name, "\t" if kind == "tsv" else ",", quoting)
    try:
        if kind == "json":
            data = json.loads(text)
            if isinstance(data, dict):  # {"data": [...]} or column-oriented {"text": [...], "label": [...]}
                lists = {k: v for k, v in data.items() if isinstance(v, list)}
                if len(lists) == 1:
                    data = next(iter(lists.values()))
                elif lists and len({len(v) for v in lists.values()}) == 1:
                    keys = list(lists)
                    data = [dict(zip(keys, values)) for values in zip(*lists.values())]
            if not isinstance(data, list):
                raise DataError(f"{path.name}: expected a list of objects.")
        else:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise DataError(f"{path.name}: not valid JSON (line {exc.lineno}: {exc.msg}).") from None
    if not data:
        raise DataError(f"{path.name}: the file has no rows.")
    if not all(isinstance(row, dict) for row in data):
        raise DataError(f"{path.name}: every row must be an object with named fields.")
    header = list(dict.fromkeys(k for row in data for k in row))
    return header, data


def parse_delimited(text: str, delimiter: str, quoted: bool) -> list[tuple[int, list[str]]]:
    """(line number, cells) for each non-blank record; quoted fields may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    records, line = [], 1
    for cells in reader:
        if cells and any(cell.strip() for cell in cells):
            records.append((line, cells))
        line = reader.line_num + 1
    return records


def consistent_fields(records: list[tuple[int, list[str]]]) -> bool:
    return bool(records) and all(len(cells) == len(records[0][1]) for _, cells in records)


def _first_bad_line(records: list[tuple[int, list[str]]]) -> int:
    width = len(records[0][1]) if records else 0
    return next((line for line, cells in records if len(cells) != width), 1 << 30)


def looks_quoted(records: list[tuple[int, list[str]]]) -> bool:
    """Unquoted parse of a file whose fields are CSV-quoted: every field opening with a quote also
    closes with one (a GLUE sentence with a bare quote does not)."""
    opened = [cell for _, cells in records[1:] for cell in cells if cell.startswith('"')]
    return bool(opened) and all(len(c) > 1 and c.endswith('"') for c in opened)


def datasets_quietly():
    """The datasets library, its progress bars off without a terminal (a log keeps them as one line)."""
    import datasets

    if not sys.stderr.isatty():
        datasets.disable_progress_bars()
    return datasets


PARQUET_BATCH_ROWS = 1_000  # rows decoded at a time: the bound on decoded bytes is checked between batches


def _parquet_rows(path: Path, max_decoded: int, limits: ReadLimits) -> tuple[list[str], list[dict]]:
    """Read with pyarrow, in memory only (no cache copy on disk): rows and columns checked from the file's
    metadata before anything is decompressed, then decoded a batch at a time, counting the bytes of its data
    as they come (dictionary encoding lets a few KB of file stand for gigabytes of text, which the metadata
    does not show) and stopping past max_decoded."""
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
        limits.check_shape(path.name, file.metadata.num_rows, file.metadata.num_columns)
        rows, decoded = [], 0
        for batch in file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            decoded += batch.nbytes  # the decoded Arrow buffers: every string's bytes included
            if decoded > max_decoded:
                raise DataError(f"{path.name}: its data passes {max_decoded / 1e6:,.0f} MB once decompressed (by row "
                                f"{len(rows) + batch.num_rows:,}); this app reads up to that: take a sample of it.")
            rows += batch.to_pylist()
        columns = list(file.schema_arrow.names)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's
        raise DataError(f"{path.name}: not a readable parquet file ({cut(str(exc).splitlines()[0], 200)}).") from None
    if not rows:
        raise DataError(f"{path.name}: the file has no rows.")
    return columns, rows


def _delimited_rows(text: str, name: str, delimiter: str, quoting: str) -> tuple[list[str], list[dict]]:
    """quoting "auto": the parse that gives every row the header's field count wins; when both do,
    CSV quoting wins only if the quotes look like quoting. "none" / "csv": that parse only."""
    if quoting == "none":
        records = parse_delimited(text, delimiter, quoted=False)
    elif quoting == "auto":
        try:
            records = parse_delimited(text, delimiter, quoted=False)
        except csv.Error:
            records = []
        if not consistent_fields(records) or looks_quoted(records):
            # Not plain GLUE TSV: parse again with CSV quoting (only then, not for every file).
            try:
                as_csv = parse_delimited(text, delimiter, quoted=True)
            except csv.Error as exc:
                if not records:
                    raise DataError(f"{name}: cannot be parsed ({exc}).") from None
                as_csv = []
            if consistent_fields(as_csv):
                records = as_csv
            elif as_csv and _first_bad_line(as_csv) > _first_bad_line(records):
                records = as_csv  # both fail: report the parse that read further before its first bad row
    else:
        try:
            records = parse_delimited(text, delimiter, quoted=True)
        except csv.Error as exc:
            raise DataError(f"{name}: cannot be parsed ({exc}).") from None
    if not records:
        raise DataError(f"{name}: the file is empty.")
    header = [h.strip() for h in records[0][1]]
    rows = []
    for number, cells in records[1:]:
        if len(cells) != len(header):
            raise DataError(f"{name}, line {number}: {len(cells)} fields where the header has "
                            f"{len(header)}; fix the row (or quote fields that contain the separator).")
        rows.append(dict(zip(header, cells)))
    return header, rows


def obvious_column(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    """The first column whose name (any case) is a usual one for this purpose, else None."""
    lowered = {c.lower(): c for c in columns}
    return next((lowered[name] for name in candidates if name in lowered), None)


def guess_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...], purpose: str,
                 source: str, flag: str | None = None) -> str:
    if wanted:
        if wanted not in columns:
            raise DataError(f"{source}: no column {cut(str(wanted), 40)!r}; the file has: {listed(columns)}.")
        return wanted
    found = obvious_column(columns, candidates)
    if found is not None:
        return found
    raise DataError(f"{source}: cannot tell which column holds the {purpose}; name it with "
                    f"{flag or f'--{purpose}-column'} (columns: {listed(columns)}).")


def read_labelled(path: str | Path, text_column: str | None = None, label_column: str | None = None,
                  max_rows: int | None = None, max_bytes: int = MAX_FILE_BYTES,
                  columns_if_present: bool = False, quoting: str = "auto",
                  limits: ReadLimits = DEFAULT_LIMITS) -> LabelledData:
    """Texts and labels (as strings) from a file; every bad row is reported with its number."""
    path = Path(path)
    columns, rows = read_rows(path, max_bytes, quoting, limits)
    if columns_if_present:  # names carried over from another file: guess where this one lacks them
        text_column = text_column if text_column in columns else None
        label_column = label_column if label_column in columns else None
    text_column = guess_column(columns, text_column, TEXT_COLUMNS, "text", path.name)
    label_column = guess_column(columns, label_column, LABEL_COLUMNS, "label", path.name)
    if text_column == label_column:
        raise DataError(f"{path.name}: the text and label columns must differ.")
    total = len(rows)
    if max_rows is not None:
        rows = rows[:max_rows]
    texts, labels, empty = [], [], []
    for i, row in enumerate(rows):
        text, label = row.get(text_column), row.get(label_column)
        text = "" if text is None else str(text)
        if not text.strip():
            empty.append(i + 1)
            continue
        if label is None or str(label).strip() == "":
            raise DataError(f"{path.name}: row {i + 1} has no label in column {label_column!r}.")
        texts.append(text.strip())
        labels.append(str(label).strip())
    if empty:
        shown = ", ".join(map(str, empty[:5])) + (" …" if len(empty) > 5 else "")
        raise DataError(f"{path.name}: {len(empty)} row(s) have an empty text (rows {shown}); "
                        "remove or fill them.")
    if not texts:
        raise DataError(f"{path.name}: the file has no rows.")
    return LabelledData(texts=texts, labels=labels, source=str(path), text_column=text_column,
                        label_column=label_column, columns=columns, total_rows=total)


@dataclass
class TextData:
    """Texts without labels (a transfer set): a label column, if the file has one, is ignored."""

    texts: list[str]
    source: str
    text_column: str
    total_rows: int = 0

    def __len__(self) -> int:
        return len(self.texts)


def read_texts(path: str | Path, text_column: str | None = None, max_bytes: int = MAX_TEXT_FILE_BYTES,
               column_flag: str = "--text-column", quoting: str = "auto",
               limits: ReadLimits = DEFAULT_LIMITS) -> TextData:
    """Non-empty texts of a file: .txt (one per line), or the text column of a CSV/TSV/JSON(L) file."""
    path = Path(path)
    columns, rows = read_rows(path, max_bytes, quoting, limits)
    if text_column is None and len(columns) == 1:
        text_column = columns[0]
    text_column = guess_column(columns, text_column, TEXT_COLUMNS, "text", path.name, column_flag)
    texts = [str(row[text_column]).strip() for row in rows if row.get(text_column) is not None]
    texts = [t for t in texts if t]
    if not texts:
        raise DataError(f"{path.name}: no text in column {text_column!r}; the file holds nothing to learn from.")
    return TextData(texts=texts, source=str(path), text_column=text_column, total_rows=len(rows))
