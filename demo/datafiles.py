"""Labelled text files (CSV, TSV, JSON, JSON lines) read as plain text, checked row by row.

One reader for the distillation CLI, the evaluator and the Evaluate tab: the same file gets the
same message everywhere. Files are parsed as text only (never unpickled).
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILE_BYTES = 50 * 1024 * 1024  # larger files are refused (offer --max-rows for a sample instead)
TEXT_COLUMNS = ("text", "sentence", "content", "review", "document", "utterance", "tweet")
LABEL_COLUMNS = ("label", "labels", "target", "class", "category", "emotion", "sentiment")
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class DataError(ValueError):
    """A data file the run cannot use, with what to change."""


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


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    raise DataError(f"{path.name}: unknown file type {suffix or '(none)'}; use .csv, .tsv, .json or .jsonl.")


def read_rows(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> tuple[list[str], list[dict]]:
    """Columns and rows of a file. Raises DataError for anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    kind = _format(path)
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path.name}: the file is empty.")
    if size > max_bytes:
        raise DataError(f"{path.name}: {size / 1e6:.0f} MB is over the {max_bytes / 1e6:.0f} MB limit; "
                        "take a sample of it (e.g. the first N rows) and try again.")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    if kind in ("csv", "tsv"):
        # TSV as in GLUE: no quoting. CSV: standard quoting.
        reader = csv.reader(text.splitlines(), delimiter="\t" if kind == "tsv" else ",",
                            quoting=csv.QUOTE_NONE if kind == "tsv" else csv.QUOTE_MINIMAL)
        lines = [row for row in reader if row and any(cell.strip() for cell in row)]
        if not lines:
            raise DataError(f"{path.name}: the file is empty.")
        header = [h.strip() for h in lines[0]]
        rows = []
        for number, cells in enumerate(lines[1:], start=2):
            if len(cells) != len(header):
                raise DataError(f"{path.name}, line {number}: {len(cells)} fields where the header has "
                                f"{len(header)}; fix the row (or quote fields that contain the separator).")
            rows.append(dict(zip(header, cells)))
        return header, rows
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


def guess_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...], role: str,
                 source: str) -> str:
    if wanted:
        if wanted not in columns:
            raise DataError(f"{source}: no column {wanted!r}; the file has: {', '.join(columns)}.")
        return wanted
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    raise DataError(f"{source}: cannot tell which column holds the {role}; name it with "
                    f"--{role}-column (columns: {', '.join(columns)}).")


def read_labelled(path: str | Path, text_column: str | None = None, label_column: str | None = None,
                  max_rows: int | None = None, max_bytes: int = MAX_FILE_BYTES) -> LabelledData:
    """Texts and labels (as strings) from a file; every bad row is reported with its number."""
    path = Path(path)
    columns, rows = read_rows(path, max_bytes)
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
