"""A text file too large to hold in memory, read as a stream with `datasets`.

For --streaming transfer text: the file is read in chunks as it is consumed. Its quoting is told
from its first megabyte with the same rules as files.py's reader, and the texts come out as that
reader gives them (tested on the quoted review files and on SST-2).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from demo.data.files import (
    TEXT_COLUMNS,
    DataError,
    check_quoting,
    consistent_fields,
    datasets_quietly,
    file_format,
    guess_column,
    looks_quoted,
    parse_delimited,
)

SNIFF_BYTES = 1024 * 1024  # a stream's quoting is told from its first megabyte


def _sniff_quoting(path: Path, delimiter: str) -> tuple[str, list[str]]:
    """(quoting, header) of a delimited file from its first megabyte, for reading it as a stream."""
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    try:
        sample = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the sample's end
            raise DataError(f"{path.name}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
        sample = head[:exc.start].decode("utf-8-sig")
    if len(head) == SNIFF_BYTES:
        sample = sample[:sample.rfind("\n") + 1]  # whole lines only
    plain = parse_delimited(sample, delimiter, quoted=False)
    if not plain:
        raise DataError(f"{path.name}: the file is empty.")
    quoting = "none" if consistent_fields(plain) and not looks_quoted(plain) else "csv"
    header = parse_delimited(sample, delimiter, quoted=quoting == "csv")[0][1]
    return quoting, [h.strip() for h in header]


@dataclass
class TextStream:
    """A text file read as a stream (a `datasets` IterableDataset with one column, "text", holding the
    file's non-empty texts, stripped): read in chunks as it is consumed, never held whole. Iterating
    yields the texts; a malformed row deep in the file stops it with a DataError naming the file (and
    the line, where the reader says it)."""

    source: str
    text_column: str
    dataset: object

    def __iter__(self):
        return (row["text"] for row in read_stream(self.dataset, Path(self.source).name))

    def count(self, up_to: int) -> int:
        """Texts in the stream, counted up to up_to (reading no further)."""
        n = 0
        for _ in self:
            n += 1
            if n >= up_to:
                break
        return n


def stream_texts(path: str | Path, text_column: str | None = None, quoting: str = "auto",
                 column_flag: str = "--text-column") -> TextStream:
    """The text column of a file too large to hold in memory, as a stream (see TextStream)."""
    datasets = datasets_quietly()

    check_quoting(quoting)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    kind = file_format(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: the file is empty.")
    options: dict = {}
    if kind == "txt":
        builder, columns = "text", ["text"]
    elif kind in ("csv", "tsv"):
        delimiter = "\t" if kind == "tsv" else ","
        sniffed, columns = _sniff_quoting(path, delimiter)
        chosen = sniffed if quoting == "auto" else quoting
        builder = "csv"
        options = dict(delimiter=delimiter, quoting=csv.QUOTE_NONE if chosen == "none" else csv.QUOTE_MINIMAL,
                       keep_default_na=False, na_filter=False,
                       features=datasets.Features({c: datasets.Value("string") for c in columns}))
    else:
        builder = "parquet" if kind == "parquet" else "json"
        first = next(iter(datasets.load_dataset(builder, data_files=str(path), split="train", streaming=True)), {})
        columns = list(first)
    if text_column is None and len(columns) == 1:
        text_column = columns[0]
    text_column = guess_column(columns, text_column, TEXT_COLUMNS, "text", path.name, column_flag)
    stream = datasets.load_dataset(builder, data_files=str(path), split="train", streaming=True, **options)
    stream = stream.select_columns([text_column])
    if text_column != "text":
        stream = stream.rename_column(text_column, "text")
    # Empty texts dropped and the rest stripped here, once, for whoever reads the stream.
    stream = stream.filter(lambda row: row["text"] is not None and bool(str(row["text"]).strip()))
    stream = stream.map(lambda row: {"text": str(row["text"]).strip()})
    return TextStream(source=str(path), text_column=text_column, dataset=stream)


def read_stream(dataset, name: str):
    """Iterate a streamed dataset; a reader error from deep in the file (pandas, arrow) becomes a
    DataError naming the file and, where the reader says it, the line."""
    try:
        yield from dataset
    except Exception as exc:  # noqa: BLE001 - the reader's errors are the file's
        cause = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise DataError(f"{name}: {str(cause).strip().splitlines()[0][:300]}") from None
