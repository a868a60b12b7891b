"""The evaluator: CLI and Evaluate tab on tiny models and files the tests write."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from scipy.stats import binomtest

from demo.evaluate import main as evaluate_main
from demo.measuring.eval_report import spreadsheet_safe

from .apps import call, call_when_ready
from .builders import ROOT, TEXTS, direct_predictions


@pytest.fixture(scope="module")
def hand_checked(tiny_config, tmp_path_factory):
    """A file whose gold labels make the teacher right on exactly the first 7 of 12 rows."""
    pairs = yaml.safe_load(Path(tiny_config).read_text())["tasks"]["classify"]
    teacher = direct_predictions(pairs["teacher"]["model"])
    student = direct_predictions(pairs["student"]["model"])
    names = ["sadness", "joy", "love", "anger", "fear", "surprise"]
    gold = [t if i < 7 else next(n for n in names if n != t) for i, t in enumerate(teacher)]
    path = tmp_path_factory.mktemp("eval") / "hand.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(TEXTS, [g.upper() if i % 2 else g for i, g in enumerate(gold)]))  # case-insensitive
    expected = {
        "teacher_accuracy": 7 / 12,
        "student_accuracy": sum(s == g for s, g in zip(student, gold)) / 12,
        "agreement": sum(s == t for s, t in zip(student, teacher)) / 12,
        "disagreeing_rows": {i for i, (s, t) in enumerate(zip(student, teacher)) if s != t},
    }
    return path, expected


def test_against_compares_a_second_student_row_by_row(tiny_config, hand_checked, tmp_path, capsys):
    """The teacher as the second student: the comparison must mirror the report's own teacher/student one."""
    path, _ = hand_checked
    teacher_dir = yaml.safe_load(Path(tiny_config).read_text())["tasks"]["classify"]["teacher"]["model"]
    out = tmp_path / "vs-teacher"
    assert evaluate_main(["--config", str(tiny_config), "--task", "classify", "--file", str(path), "--against",
                          teacher_dir, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    against, own = report["against"]["paired"], report["paired"]
    assert (against["a"], against["b"]) == ("the student", teacher_dir)
    assert (own["a"], own["b"]) == ("student", "teacher")
    assert (against["a_right_b_wrong"], against["b_right_a_wrong"]) == (own["a_right_b_wrong"], own["b_right_a_wrong"])
    assert against["mcnemar_p"] == own["mcnemar_p"]
    assert report["against"]["accuracy"]["value"] == pytest.approx(report["teacher_accuracy"])
    f1_lead = report["against"]["macro_f1_difference"]  # paired: the report's own two macro-F1s, subtracted
    assert f1_lead["value"] == pytest.approx(report["student_macro_f1"] - report["teacher_macro_f1"], abs=1e-6)
    assert f1_lead["low"] is None or f1_lead["low"] <= f1_lead["value"] <= f1_lead["high"]
    assert "The student against" in (out / "report.md").read_text()
    assert "Macro-F1, the student minus" in (out / "report.md").read_text()
    assert f"against {teacher_dir}:" in capsys.readouterr().out
    missing = tmp_path / "no-such-model"
    assert evaluate_main(["--config", str(tiny_config), "--task", "classify", "--file", str(path), "--against",
                          str(missing), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists() and "does not exist" in capsys.readouterr().err


def test_the_decision_report_answers_the_question_on_one_page(tiny_config, hand_checked, tmp_path, capsys):
    path, _expected = hand_checked
    out = tmp_path / "decision"
    argv = ["--config", str(tiny_config), "--task", "classify", "--file", str(path), "--decision",
            "--price-per-hour", "0.5", "--out", str(out)]
    assert evaluate_main(argv) == 0
    page = (out / "decision.html").read_text()
    report = json.loads((out / "report.json").read_text())
    for part in ("Can the student replace the teacher on hand.csv?", "Scorecard", "Per class", "Where they disagree",
                 "Throughput and cost on this hardware", "cost per million at $0.5/h", "Reproduce"):
        assert part in page, part
    assert "<script" not in page and "@media print" in page  # self-contained, prints cleanly
    retention = report["intervals"]["retention"]
    assert f"Retention {retention['value']:.3f} [{retention['low']:.3f}, {retention['high']:.3f}]" in page
    # twelve rows decide nothing about 97%: the page says so rather than drawing a verdict
    assert "Not yet known" in page or "Not against DistilBERT" in page
    assert "--decision --price-per-hour 0.5" in page  # the command that reproduces it
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith(("Yes,", "Not yet known", "Not against")) for line in printed)
    assert evaluate_main([*argv[:-4], "--decision", "--out", str(tmp_path / "x")]) == 2  # no price
    assert "needs --price-per-hour" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_cli_figures_are_right_on_a_hand_checked_file(tiny_config, hand_checked, tmp_path):
    path, expected = hand_checked
    out = tmp_path / "report"
    assert evaluate_main(["--config", str(tiny_config), "--task", "classify", "--file", str(path), "--out", str(out),
                          "--batch-size", "5"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_examples"] == 12
    assert report["teacher_accuracy"] == pytest.approx(expected["teacher_accuracy"])
    assert report["student_accuracy"] == pytest.approx(expected["student_accuracy"])
    assert report["agreement"] == pytest.approx(expected["agreement"])
    assert report["retention"] == pytest.approx(expected["student_accuracy"] / expected["teacher_accuracy"])
    assert report["speedup"] == pytest.approx(report["teacher_total_ms"] / report["student_total_ms"])
    # every figure carries its 95% interval; accuracy's is Wilson's, the comparison an exact McNemar test
    intervals = report["intervals"]
    assert intervals["teacher_accuracy"]["method"] == "wilson" and intervals["teacher_accuracy"]["n"] == 12
    assert intervals["teacher_accuracy"]["low"] < 7 / 12 < intervals["teacher_accuracy"]["high"]
    for name in ("student_accuracy", "agreement", "retention", "teacher_macro_f1", "speedup"):
        e = intervals[name]
        assert e["value"] is None or e["low"] <= e["value"] <= e["high"], name
    b, c = report["paired"]["a_right_b_wrong"], report["paired"]["b_right_a_wrong"]  # a: the student, b: the teacher
    assert b - c == round((report["student_accuracy"] - report["teacher_accuracy"]) * 12)
    assert report["paired"]["mcnemar_p"] == pytest.approx(binomtest(b, b + c, 0.5).pvalue if b + c else None)
    with (out / "predictions.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and {int(r["index"]) for r in rows if r["agree"] == "False"} == expected["disagreeing_rows"]
    md = (out / "report.md").read_text()
    assert f"{expected['teacher_accuracy']:.4f}" in md and "Confusion matrices" in md and "hand.csv" in md
    assert (out / "report.html").read_text().startswith("<!doctype html>")


def test_tab_gives_the_cli_figures_and_lists_exactly_the_disagreements(client, tiny_config, hand_checked, tmp_path):
    path, expected = hand_checked
    call_when_ready(client, "warm", "/classify")
    figures, summary, _plot, explorer, downloads, cleared = call(
        client, handle_file(str(path)), "classify", "text", "label", None, api_name="/evaluate")
    out = tmp_path / "cli"
    assert evaluate_main(["--config", str(tiny_config), "--task", "classify", "--file", str(path),
                          "--out", str(out)]) == 0
    cli = json.loads((out / "report.json").read_text())
    for key in ("teacher_accuracy", "student_accuracy", "retention", "agreement", "teacher_macro_f1",
                "student_macro_f1", "n_examples"):
        assert figures[key] == pytest.approx(cli[key]), key
    assert {row[0] for row in explorer["data"]} == expected["disagreeing_rows"]
    confidences = [row[4] for row in explorer["data"]]
    assert confidences == sorted(confidences, reverse=True)  # teacher's most confident first
    assert sorted(Path(p).name for p in downloads) == ["predictions.csv", "report.html", "report.json", "report.md"]
    assert "disagreements" in summary and cleared == {"__type__": "update"}  # the file stays for the next question
    for key in ("teacher_accuracy", "retention", "speedup"):  # the same intervals as the CLI's (batch timings aside)
        assert figures["intervals"][key]["n"] == cli["intervals"][key]["n"]
    assert figures["intervals"]["retention"]["low"] == pytest.approx(cli["intervals"]["retention"]["low"])
    assert figures["paired"]["sentence"] == cli["paired"]["sentence"]


def test_the_tab_writes_the_decision_report_and_refuses_without_a_price(client, hand_checked, tmp_path):
    path, _ = hand_checked
    call_when_ready(client, "warm", "/classify")
    upload = tmp_path / "hand.csv"
    upload.write_bytes(path.read_bytes())
    outputs = call(client, handle_file(str(upload)), "classify", "text", "label", None, 0.25,
                   api_name="/decision_report")
    downloads = {Path(p).name: p for p in outputs[4]}
    assert "decision.html" in downloads
    assert "cost per million at $0.25/h" in Path(downloads["decision.html"]).read_text()
    upload.write_bytes(path.read_bytes())
    with pytest.raises(AppError, match="price of an hour of this machine"):
        call(client, handle_file(str(upload)), "classify", "text", "label", None, None, api_name="/decision_report")


def write(path: Path, content: bytes | str) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", "", "the file is empty"),
    ("latin1.csv", "text,label\ncaf\xe9 good,joy\n".encode("latin-1"), "not UTF-8 text"),
    ("nocol.csv", "body,label\nhello,joy\n", "cannot tell which column holds the text"),
    ("ragged.tsv", "text\tlabel\nhello\tjoy\textra\n", "line 2: 3 fields where the header has 2"),
    ("blank.csv", "text,label\nhello,joy\n   ,joy\n", "1 row(s) have an empty text (rows 2)"),
    ("labels.csv", "text,label\nhello,joy\nbye,grumpy\n", "labels grumpy are unknown to"),
    ("bad.json", "[{\"text\": \"hi\", ", "not valid JSON"),
    ("data.xlsx", "whatever", "unknown file type .xlsx"),
])
def test_bad_files_get_a_clear_message(tiny_config, tmp_path, capsys, name, content, message):
    path = write(tmp_path / name, content)
    rc = evaluate_main(["--config", str(tiny_config), "--task", "classify", "--file", str(path),
                        "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unknown_labels_name_what_the_model_knows(tiny_config, tmp_path, capsys):
    path = write(tmp_path / "labels.jsonl", '{"text": "hello", "label": "grumpy"}\n{"text": "hi", "label": "joy"}\n')
    assert evaluate_main(["--config", str(tiny_config), "--task", "classify", "--file", str(path),
                          "--out", str(tmp_path / "out")]) == 2
    assert "which knows: sadness, joy, love, anger, fear, surprise" in capsys.readouterr().err


def test_huge_files_offer_a_sample(tiny_config, tmp_path, capsys):
    path = write(tmp_path / "big.tsv", "text\tlabel\n" + "i feel happy\tjoy\n" * 20_001)
    assert evaluate_main(["--config", str(tiny_config), "--task", "classify", "--file", str(path),
                          "--out", str(tmp_path / "out")]) == 2
    assert "over the 20,000 limit; set max rows (--max-rows N)" in capsys.readouterr().err
    assert evaluate_main(["--config", str(tiny_config), "--task", "classify", "--file", str(path),
                          "--out", str(tmp_path / "out"), "--max-rows", "50"]) == 0
    assert json.loads((tmp_path / "out" / "report.json").read_text())["n_examples"] == 50


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ("text,label\nhello,grumpy\n", "labels grumpy are unknown"),
])
def test_tab_reports_bad_files(client, tmp_path, content, message):
    path = write(tmp_path / "bad.csv", content)
    with pytest.raises(AppError, match=message):
        call(client, handle_file(str(path)), "classify", None, None, None, api_name="/evaluate")


@pytest.mark.slow  # a new interpreter: ~8 s of imports on these machines
def test_cli_runs_as_a_module(tiny_config, hand_checked, tmp_path):
    path, _ = hand_checked
    proc = subprocess.run([sys.executable, "-m", "demo.evaluate", "--config", str(tiny_config), "--task", "sentiment",
                           "--file", str(path), "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    # sentiment models know negative/positive, not emotions: stopped before inference, one line
    assert proc.returncode == 2 and "are unknown to" in proc.stderr and "Traceback" not in proc.stderr


REVIEWS = ROOT.parent / "shared" / "data" / "reviews-electronics" / "test.tsv"


@pytest.mark.slow  # 2,000 long reviews through both tiny models, twice: ~5 s
@pytest.mark.skipif(not REVIEWS.is_file(), reason="../shared/data is not present")
def test_cli_and_tab_read_the_quoted_review_file_as_pythons_csv_module_does(client, tiny_config, tmp_path):
    # CSV-quoted TSV: reviews span lines and hold tabs and doubled quotes. Two labels, 0 and 1: class ids.
    with REVIEWS.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = tmp_path / "cli"
    assert evaluate_main(["--config", str(tiny_config), "--task", "sentiment", "--file", str(REVIEWS),
                          "--max-length", "32", "--out", str(out)]) == 0
    with (out / "predictions.csv").open(encoding="utf-8", newline="") as f:
        predicted = list(csv.DictReader(f))
    assert len(predicted) == len(rows) == 2000
    assert [p["text"] for p in predicted] == [spreadsheet_safe(r["sentence"].strip()) for r in rows]
    upload = tmp_path / "reviews.tsv"
    upload.write_bytes(REVIEWS.read_bytes())  # the tab deletes its upload after use: give it a copy
    call_when_ready(client, "warm", "/sentiment")
    figures = call(client, handle_file(str(upload)), "sentiment", "sentence", "label", None,
                             api_name="/evaluate")[0]
    assert figures["n_examples"] == 2000


def test_the_scorecard_shows_the_figures_of_the_charts_and_the_report(app_server, hand_checked, tmp_path):
    """One visitor's session: its requests feed the latency chart and the scorecard alike; its
    evaluation feeds the report and the scorecard alike; the report carries the same scorecard."""
    session = app_server.client()  # a new session: nothing measured yet
    markdown, card = call(session, api_name="/scorecard")
    row = next(r for r in card["rows"] if r["task"] == "classify")
    assert row["speedup"] is None and row["retention"] is None and "evaluate a file" in markdown
    agreements = []
    for text in ("i feel happy", "they hate this city", "what a surprise"):
        result = call_when_ready(session, text, "/page_classify")  # the page's event: this session's history
        agreements.append(result[0]["agree"])
    chart_title = json.loads(result[4]["plot"])["layout"]["title"]["text"]
    markdown, card = call(session, api_name="/scorecard")
    row = next(r for r in card["rows"] if r["task"] == "classify")
    assert row["requests"] == 3 and row["agreement"]["value"] == pytest.approx(sum(agreements) / 3)
    speedup = row["speedup"]
    assert f"speedup {speedup['value']:.2f}×" in chart_title  # the chart's subtitle and the scorecard: one figure
    assert speedup["n"] == 3 and speedup["low"] <= speedup["value"] <= speedup["high"]
    # three requests decide nothing unless the whole interval clears (or misses) 1.6
    expected = "met" if speedup["low"] >= 1.6 else "not met" if speedup["high"] < 1.6 else "not yet known"
    assert row["state"]["speedup"] == expected and row["params_saved"] > 0
    path, _ = hand_checked
    upload = tmp_path / "hand.csv"
    upload.write_bytes(path.read_bytes())
    figures = call(session, handle_file(str(upload)), "classify", "text", "label", None, api_name="/evaluate")[0]
    markdown, card = call(session, api_name="/scorecard")
    row = next(r for r in card["rows"] if r["task"] == "classify")
    assert row["retention"]["value"] == pytest.approx(figures["retention"]) and row["retention_data"] == "hand.csv"
    assert row["retention"] == figures["intervals"]["retention"]  # the same interval, not only the same point
    in_report = figures["scorecard"]["rows"][0]
    assert in_report["retention"]["value"] == pytest.approx(figures["retention"])
    assert in_report["speedup"]["value"] == pytest.approx(figures["speedup"])
    assert in_report["params_saved"] == row["params_saved"]
    assert f"{figures['retention']:.3f} [" in markdown and "on `hand.csv` (n = 12, student `" in markdown
    assert row["retention_student"] == call(session, "x", api_name="/classify")["student"]["model"]  # which student
