"""The one reader of text files: GLUE-style TSV, CSV-quoted TSV from the wild, text-only files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from demo.data.files import DataError, read_labelled, read_texts

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_quoted_tsv_fields_span_lines_and_hold_tabs_and_quotes(tmp_path):
    f = tmp_path / "reviews.tsv"
    f.write_text('sentence\tlabel\n"great\n\tsound, ""loud"" too"\t1\n"meh"\t0\n', encoding="utf-8")
    data = read_labelled(f)
    assert data.texts == ['great\n\tsound, "loud" too', "meh"] and data.labels == ["1", "0"]


def test_glue_tsv_keeps_bare_quotes(tmp_path):
    f = tmp_path / "glue.tsv"
    f.write_text('sentence\tlabel\nthe " best " film\t1\n"quoted start but no end\t0\n', encoding="utf-8")
    assert read_labelled(f).texts == ['the " best " film', '"quoted start but no end']


def test_a_row_with_too_many_fields_is_named_by_line(tmp_path):
    f = tmp_path / "bad.tsv"
    f.write_text('sentence\tlabel\n"a\nb"\t1\nc\t0\textra\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv, line 4: 3 fields where the header has 2"):
        read_labelled(f)


def test_text_only_files(tmp_path):
    (tmp_path / "t.txt").write_text("first text\n\n  second  \n", encoding="utf-8")
    assert read_texts(tmp_path / "t.txt").texts == ["first text", "second"]
    (tmp_path / "t.tsv").write_text("sentence\tlabel\nhello\t1\n", encoding="utf-8")
    assert read_texts(tmp_path / "t.tsv").texts == ["hello"]  # the label column is ignored
    (tmp_path / "e.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(DataError, match="no text"):
        read_texts(tmp_path / "e.txt")
    with pytest.raises(DataError, match="which column holds the label"):
        read_labelled(tmp_path / "t.txt")  # a text-only file has no labels to evaluate on


@pytest.mark.skipif(not (DATA / "reviews-electronics").is_dir(), reason="../shared/data is not here")
def test_review_files_read_as_pythons_csv_module_reads_them():
    path = DATA / "reviews-electronics" / "test.tsv"
    with path.open(encoding="utf-8", newline="") as f:
        expected = list(csv.reader(f, delimiter="\t"))[1:]
    data = read_labelled(path)
    assert len(data) == 2000 == len(expected)
    assert data.texts == [row[0].strip() for row in expected] and data.labels == [row[1] for row in expected]


@pytest.mark.skipif(not (DATA / "sst2").is_dir(), reason="../shared/data is not here")
def test_sst2_reads_exactly_as_before():
    path = DATA / "sst2" / "train.tsv"
    lines = list(csv.reader(path.read_text(encoding="utf-8").splitlines(), delimiter="\t",
                            quoting=csv.QUOTE_NONE))  # the reader before quoted files were detected
    data = read_labelled(path)
    assert data.texts == [row[0].strip() for row in lines[1:]] and data.labels == [row[1] for row in lines[1:]]


def test_quoting_can_be_named_when_detection_would_guess_otherwise(tmp_path):
    f = tmp_path / "glue.tsv"  # every quote opens and closes a field: auto takes it for CSV quoting
    f.write_text('sentence\tlabel\n"a title in quotes"\t1\nplain text\t0\n', encoding="utf-8")
    assert read_labelled(f).texts == ["a title in quotes", "plain text"]
    assert read_labelled(f, quoting="none").texts == ['"a title in quotes"', "plain text"]
    bare = tmp_path / "bare.tsv"
    bare.write_text('sentence\tlabel\n"the best\t1\nfilm\t0\n', encoding="utf-8")
    assert read_labelled(bare).texts == ['"the best', "film"]  # auto: GLUE-style, the quote is text
    with pytest.raises(DataError, match=r"bare.tsv"):
        read_labelled(bare, quoting="csv")  # the opening quote swallows the rest of the file
    with pytest.raises(DataError, match="--quoting 'maybe': use auto"):
        read_labelled(bare, quoting="maybe")


def test_parquet_files_read_through_datasets(tmp_path):
    import datasets

    f = tmp_path / "set.parquet"
    datasets.Dataset.from_dict({"text": ["good film", "bad film"], "label": [1, 0]}).to_parquet(str(f))
    data = read_labelled(f)
    assert data.texts == ["good film", "bad film"] and data.labels == ["1", "0"]
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"broken\.parquet: not a readable parquet file"):
        read_labelled(broken)


@pytest.mark.parametrize("name", ["reviews-electronics/test.tsv", "sst2/validation.tsv"])
def test_a_stream_reads_the_texts_the_reader_reads(name):
    from demo.data.streams import stream_texts

    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    streamed = stream_texts(path)
    assert list(streamed) == read_texts(path).texts
    assert streamed.count(100) == 100


def test_a_malformed_row_deep_in_a_stream_is_a_data_error(tmp_path):
    from demo.data.streams import stream_texts

    f = tmp_path / "stream.tsv"
    f.write_text("text\tlabel\n" + "".join(f"row {i}\t1\n" for i in range(50)) + "bad\t1\textra\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"stream.tsv: .*line 52"):
        list(stream_texts(f))
