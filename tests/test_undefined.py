"""Reports never cost a run: figures that cannot be computed (a teacher that is never right, one class,
no rows, a diverged loss) are said to be undefined, with the reason; the model and metrics are kept."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from transformers import BertForMaskedLM, BertTokenizerFast

from demo.distill.cli import main as distill_main
from demo.evaluate import main as evaluate_main

from .builders import TEXTS, bert_config, direct_predictions, save


def strict_json(path: Path) -> dict:
    """metrics.json / report.json as a strict parser reads it: NaN or Infinity would fail here."""
    def refuse(constant):
        raise AssertionError(f"{path.name} holds {constant}, which JSON does not have")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture()
def never_right_mlm(tmp_path) -> Path:
    """A masked LM that always guesses [PAD] (which no held-out token is): its top-1 accuracy is 0."""
    torch.manual_seed(0)
    model = BertForMaskedLM(bert_config())
    with torch.no_grad():
        model.cls.predictions.bias.fill_(-50.0)
        model.cls.predictions.bias[0] = 50.0  # [PAD]
    return save(model, BertTokenizerFast, tmp_path / "never-right")


def test_a_teacher_that_guesses_no_token_still_yields_a_saved_student(never_right_mlm, texts_file, tmp_path, capsys):
    out = tmp_path / "student"
    assert distill_main(["distill", "--objective", "mlm", "--teacher", str(never_right_mlm), "--train-file",
                         str(texts_file), "--student-layers", "2", "--epochs", "1", "--min-steps", "0",
                         "--batch-size", "32", "--output-dir", str(out)]) == 0
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    metrics = strict_json(out / "metrics.json")["masked_lm"]
    assert metrics["teacher"]["top1_accuracy"] == 0 and metrics["retention_top1"] is None
    retention = metrics["intervals"]["retention_top1"]
    assert retention["value"] is None and "divides by zero" in retention["why_undefined"]
    assert "undefined (top-1 retention divides by zero" in (out / "README.md").read_text()
    assert "retention undefined" in capsys.readouterr().out


@pytest.fixture()
def labelled(tiny_config, tmp_path):
    """Write a labelled file for the tiny classify pair, the gold labels chosen from the teacher's answers."""
    pairs = yaml.safe_load(Path(tiny_config).read_text())["tasks"]["classify"]
    teacher = direct_predictions(pairs["teacher"]["model"])
    names = ["sadness", "joy", "love", "anger", "fear", "surprise"]

    def write(gold_of) -> Path:
        path = tmp_path / "file.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["text", "label"], *zip(TEXTS, [gold_of(t, names) for t in teacher])])
        return path

    return write


def test_a_teacher_that_is_never_right_leaves_retention_undefined(tiny_config, labelled, tmp_path, capsys):
    path = labelled(lambda t, names: next(n for n in names if n != t))  # every row: not the teacher's answer
    out = tmp_path / "report"
    assert evaluate_main(["--config", str(tiny_config), "--task", "classify", "--file", str(path),
                          "--out", str(out)]) == 0
    report = strict_json(out / "report.json")
    assert report["teacher_accuracy"] == 0 and report["retention"] is None
    assert "divides by zero" in report["intervals"]["retention"]["why_undefined"]
    assert report["scorecard"]["rows"][0]["state"]["retention"] == "not yet known"
    assert "undefined (retention divides by zero" in (out / "report.md").read_text()
    assert "Traceback" not in capsys.readouterr().err


def test_a_file_of_one_class_is_measured(tiny_config, labelled, tmp_path):
    path = labelled(lambda t, names: "joy")
    out = tmp_path / "report"
    assert evaluate_main(["--config", str(tiny_config), "--task", "classify", "--file", str(path),
                          "--out", str(out)]) == 0
    report = strict_json(out / "report.json")
    f1 = report["intervals"]["teacher_macro_f1"]
    assert f1["low"] <= f1["value"] <= f1["high"]


def test_a_file_without_rows_is_refused_in_one_line(tiny_config, tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n")
    assert evaluate_main(["--config", str(tiny_config), "--task", "classify", "--file", str(path),
                          "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "has no rows" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_diverged_loss_is_written_as_null_not_nan(encoder_dir, data, tmp_path, monkeypatch):
    from demo.distill import objectives

    def nan_loss(device):
        def loss_fn(model, batch):
            logits = objectives.forward(model, batch, device).logits
            return logits.sum() * float("nan"), {}
        return loss_fn

    monkeypatch.setattr("demo.distill.finetune.cross_entropy_loss_fn", nan_loss)
    out = tmp_path / "diverged"
    assert distill_main(["finetune", "--model", str(encoder_dir), "--train-file", str(data["train"]),
                         "--validation-file", str(data["validation"]), "--max-train-samples", "32", "--epochs", "1",
                         "--batch-size", "16", "--logging-steps", "1", "--output-dir", str(out)]) == 0
    metrics = strict_json(out / "metrics.json")
    assert metrics["history"][0]["train_loss"] is None  # NaN in the run, null in the file
    for line in (out / "history.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"history.jsonl holds {c}"))
    assert (out / "model.safetensors").is_file() and math.isfinite(metrics["accuracy"])


def test_a_card_that_cannot_be_written_costs_nothing_but_says_so(encoder_dir, data, tmp_path, monkeypatch, capsys):
    """The card step fails after training: the model and metrics.json stay, one line, exit 2."""
    from demo.distill import kd

    teacher = tmp_path / "teacher"
    assert distill_main(["finetune", "--model", str(encoder_dir), "--train-file", str(data["train"]),
                         "--validation-file", str(data["validation"]), "--max-train-samples", "32", "--epochs", "1",
                         "--batch-size", "16", "--output-dir", str(teacher)]) == 0

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(kd.ClassifierDistill, "write_card", broken)
    out = tmp_path / "student"
    capsys.readouterr()
    assert distill_main(["distill", "--augment", "0",
                         "--teacher", str(teacher), "--student-layers", "1", "--train-file",
                         str(data["train"]), "--validation-file", str(data["validation"]), "--max-train-samples",
                         "32", "--epochs", "1", "--batch-size", "16", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "template exploded" in err and "metrics.json" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1  # said once
    assert (out / "model.safetensors").is_file() and strict_json(out / "metrics.json")["student_accuracy"] >= 0
