"""The distillation recipe and CLI on tiny random models: losses, layer mapping, runs, card, publishing."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertForSequenceClassification,
)

from demo.distill.card import hub_id
from demo.distill.cli import main
from demo.distill.hub import PublishError, publish


@pytest.fixture(scope="module")
def teacher_dir(encoder_dir, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    rc = main(["finetune", "--model", str(encoder_dir), "--train-file", str(data["train"]), "--validation-file",
               str(data["validation"]), "--epochs", "4", "--min-steps", "0", "--batch-size", "16",
               "--learning-rate", "3e-3",
               "--output-dir", str(out), "--overwrite-output-dir"])
    assert rc == 0
    return out


# ---- the CLI end to end ------------------------------------------------------------------------
def test_finetune_writes_a_teacher(teacher_dir):
    metrics = json.loads((teacher_dir / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.8, metrics  # the tiny task is learnable: one sentiment word decides
    model = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert (teacher_dir / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def distilled(teacher_dir, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    calls = []
    original = BertForSequenceClassification.forward

    @functools.wraps(original)  # keeps the signature: the CLI reads it to choose inputs
    def spy(self, *args, **kwargs):
        calls.append({k for k, v in kwargs.items() if v is not None})
        return original(self, *args, **kwargs)

    BertForSequenceClassification.forward = spy
    try:
        rc = main(["distill", "--teacher", str(teacher_dir), "--student-layers", "2", "--train-file",
                   str(data["train"]), "--validation-file", str(data["validation"]), "--epochs", "3",
                   "--min-steps", "0", "--batch-size", "16", "--learning-rate", "3e-3", "--alpha-cos", "0.5",
                   "--cos-layers", "all", "--augment", "0",
                   "--baselines", "--export-onnx", "--output-dir", str(out), "--overwrite-output-dir"])
    finally:
        BertForSequenceClassification.forward = original
    assert rc == 0
    return out, calls


def test_distill_writes_a_complete_output_directory(distilled):
    out, _ = distilled
    for name in ("model.safetensors", "config.json", "tokenizer.json", "metrics.json", "README.md",
                 "training/demo/distill/cli.py"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("teacher_accuracy", "student_accuracy", "retention", "agreement", "teacher_macro_f1",
                "student_macro_f1", "teacher_params", "student_params", "speedup", "train_seconds", "command", "args"):
        assert key in metrics, key
    assert metrics["retention"] == pytest.approx(metrics["student_accuracy"] / metrics["teacher_accuracy"])
    assert metrics["student_params"] < metrics["teacher_params"]
    assert metrics["command"].startswith("python -m demo.distill distill --teacher")
    assert [b["name"] for b in metrics["baselines"]] == ["layer dropping alone (no training)",
                                                        "hard labels alone (no teacher)"]
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert type(model).__name__ == "DistilBertForSequenceClassification" and model.config.n_layers == 2
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert "token_type_ids" not in tokenizer("good film")  # pipelines can feed it to DistilBERT as is


def test_distillation_lowers_the_loss(distilled):
    history = json.loads((distilled[0] / "metrics.json").read_text())["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_teacher_gets_token_type_ids_during_distillation(distilled):
    _, calls = distilled
    assert calls and all("token_type_ids" in keys for keys in calls)


def test_card_has_valid_hub_metadata(distilled):
    out, _ = distilled
    metrics = json.loads((out / "metrics.json").read_text())
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "text-classification" and card.data.library_name == "transformers"
    # local files: no model-index (the Hub would show the figures as scores on a dataset it does not know);
    # the figures are in the card's tables and metrics.json
    assert card.data.eval_results is None and "model-index" not in card.content
    assert f"{metrics['student_accuracy']:.4f}" in card.text and f"{metrics['student_params']:,}" in card.text
    assert "sanh2019distilbert" in card.content
    assert metrics["bought"].startswith("distilling ") and f"In one sentence: {metrics['bought']}." in card.text
    assert "What distillation itself adds" in card.text and "pipeline(\"text-classification\"" in card.text
    meta = metadata_load(out / "README.md")  # what the Hub reads
    assert "datasets" not in meta and "base_model" not in meta  # local files and a local teacher: no false ids
    import transformers

    assert f"- transformers {transformers.__version__}" in card.text  # framework versions
    evaluated = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    evaluated = [row for row in evaluated if row.get("evaluated")]
    table = [line for line in card.text.splitlines() if line.startswith("| ") and line.count("|") == 5
             and line.split("|")[1].strip().isdigit()]
    assert len(evaluated) == 3 and [int(r.split("|")[1]) for r in table] == [row["epoch"] for row in evaluated]


def test_a_card_from_a_hub_dataset_indexes_only_its_evaluation_metrics(distilled, tmp_path):
    """--dataset nyu-mll/glue --dataset-config sst2: model-index holds accuracy and macro-F1 on that dataset,
    its config and split; nothing else (speedup, size, retention, local test sets) is an entry."""
    from demo.distill.card import render_card

    out, _ = distilled
    metrics = json.loads((out / "metrics.json").read_text())
    context = {"model_name": "tiny", "repo_id": "me/tiny", "teacher": "google-bert/bert-base-uncased",
               "teacher_path": "google-bert/bert-base-uncased", "student_arch": "distilbert",
               "teacher_url": "https://huggingface.co/google-bert/bert-base-uncased",
               "hub_dataset": "nyu-mll/glue", "hub_dataset_config": "sst2",
               "dataset_name": "nyu-mll/glue", "ci": {}, "args": metrics["args"], "baselines": None,
               "frameworks": {}, "evaluations": [], "layers": metrics["layers"], "label_names": ["a", "b"]}
    render_card(metrics, context).save(tmp_path / "README.md")
    card = ModelCard.load(tmp_path / "README.md")  # read back as the Hub reads it
    entries = card.data.eval_results
    assert sorted(r.metric_type for r in entries) == ["accuracy", "f1"]
    for r in entries:
        assert (r.dataset_type, r.dataset_config, r.dataset_split) == ("nyu-mll/glue", "sst2", "validation")
        assert r.task_type == "text-classification" and isinstance(r.metric_value, float)
    assert card.data.datasets == ["nyu-mll/glue"] and card.data.base_model == "google-bert/bert-base-uncased"


def test_base_model_is_the_teachers_hub_id_when_it_has_one(tmp_path):
    snapshot = tmp_path / "hub" / "models--google-bert--bert-base-uncased" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert hub_id("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    assert hub_id(str(snapshot)) == "google-bert/bert-base-uncased"  # a Hub download on disk
    assert hub_id(str(tmp_path)) is None and hub_id("runs/missing/teacher") is None


def test_export_onnx_writes_a_student_that_answers_like_it(distilled):
    import numpy as np
    import onnxruntime

    out, _ = distilled
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    enc = tokenizer(["good film", "a bad sad film"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**enc).logits.numpy()
    for name, tolerance in (("model.onnx", 1e-4), ("model_quantized.onnx", 0.1)):
        session = onnxruntime.InferenceSession(str(out / "onnx" / name), providers=["CPUExecutionProvider"])
        feeds = {i.name: enc[i.name].numpy() for i in session.get_inputs()}
        assert np.allclose(session.run(None, feeds)[0], expected, atol=tolerance), name


def test_dry_run_lists_the_upload_without_network(distilled, capsys, monkeypatch):
    out, _ = distilled
    monkeypatch.setenv("HF_TOKEN", "hf_FAKEtoken1234567890")
    assert main(["push", "--output-dir", str(out), "--repo-id", "me/tiny-distilled", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "would upload" in printed and "me/tiny-distilled/model.safetensors" in printed
    assert "me/tiny-distilled/training/demo/distill/cli.py" in printed
    assert "me/tiny-distilled/onnx/model.onnx" in printed and "me/tiny-distilled/onnx/model_quantized.onnx" in printed
    assert "hf_FAKEtoken1234567890" not in printed


class FakeHub:
    def __init__(self, fail: bool = False):
        self.calls, self.fail = [], fail

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))

    def create_commit(self, **kwargs):
        if self.fail:
            raise ConnectionError("network unreachable")
        self.calls.append(("create_commit", kwargs))


def test_publish_creates_the_repo_and_uploads_in_one_commit(distilled):
    out, _ = distilled
    hub = FakeHub()
    plan = publish(out, "me/tiny-distilled", private=True, api=hub)
    assert hub.calls[0] == ("create_repo", {"repo_id": "me/tiny-distilled", "repo_type": "model", "private": True,
                                            "exist_ok": True})
    name, kwargs = hub.calls[1]
    assert name == "create_commit" and kwargs["repo_id"] == "me/tiny-distilled"
    sent = {op.path_in_repo for op in kwargs["operations"]}  # exactly the plan, in one commit
    assert sent == {remote.split("/", 2)[-1] for _, remote in plan} and "README.md" in sent
    metrics = next(op for op in kwargs["operations"] if op.path_in_repo == "metrics.json")
    assert str(out.parent) not in Path(metrics.path_or_fileobj).read_text()  # no path of this machine
    assert len(hub.calls) == 2


def test_failed_upload_keeps_the_output_and_says_how_to_retry(distilled):
    out, _ = distilled
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(PublishError, match=r"is intact; retry with: python -m demo\.distill push"):
        publish(out, "me/tiny-distilled", api=FakeHub(fail=True))
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.write_text(""), "the file is empty"),
    (lambda p: p.write_text("words\tlabel\nhello\tpositive\n"), "no column 'sentence'; the file has: words, label"),
    (lambda p: p.write_text("sentence\tlabel\nhello\tneutral\n"), "validation labels neutral never occur"),
])
def test_bad_validation_data_stops_before_training(teacher_dir, data, tmp_path, capsys, mutate, message):
    bad = tmp_path / "validation.tsv"
    mutate(bad)
    out = tmp_path / "out"
    rc = main(["distill", "--teacher", str(teacher_dir), "--student-layers", "2", "--train-file", str(data["train"]),
               "--validation-file", str(bad), "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (out / "model.safetensors").exists()


def test_labels_that_differ_from_the_teachers_stop_the_run(teacher_dir, tmp_path, capsys):
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\ngood film\tjoy\nbad film\tanger\n")
    rc = main(["distill", "--teacher", str(teacher_dir), "--train-file", str(train), "--validation-file", str(train),
               "--student-layers", "2", "--output-dir", str(tmp_path / "out")])
    assert rc == 2 and "are not among the classes negative, positive" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["distill", "--train-file", "x.tsv", "--validation-file", "y.tsv", "--output-dir", "o"], "--teacher is required"),
    (["distill", "--teacher", "t", "--output-dir", "o"], "give --train-file and --validation-file"),
    (["distill", "--teacher", "t", "--train-file", "x", "--validation-file", "y", "--output-dir", "o",
      "--alpha-ce", "0", "--alpha-hard", "0"], "every loss term is switched off"),
    (["bake"], "unknown step 'bake'"),
    (["finetune", "--model", "m", "--train-file", "x", "--validation-file", "y", "--output-dir", "o", "--bogus", "1"],
     "unknown argument(s) --bogus 1; see python -m demo.distill finetune --help"),
])
def test_bad_arguments_say_how_to_fix(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cached_soft_targets_follow_dataset_order(teacher_dir):
    from demo.distill.targets import compute_logits
    from demo.models.config import ModelSpec
    from demo.models.loading import load_model

    teacher = load_model(ModelSpec(str(teacher_dir)), "classify", torch.device("cpu"))
    texts = ["good", "the film was very bad and the plot dull", "happy day", "a", "i hate it so much today"]
    cached = compute_logits(teacher, texts, 32, batch_size=2)
    with torch.no_grad():
        for i, text in enumerate(texts):
            direct = teacher.model(**teacher.tokenizer(text, return_tensors="pt")).logits[0]
            assert torch.allclose(cached[i], direct, atol=1e-5)


def test_finetune_takes_more_epochs_on_small_data_unless_told_how_many(encoder_dir, data, tmp_path, capsys):
    common = ["finetune", "--model", str(encoder_dir), "--train-file", str(data["train"]), "--validation-file",
              str(data["validation"]), "--max-train-samples", "64", "--min-steps", "12", "--batch-size", "16"]
    assert main([*common, "--output-dir", str(tmp_path / "floor")]) == 0
    metrics = json.loads((tmp_path / "floor" / "metrics.json").read_text())
    # 64 rows / 16 = 4 steps per epoch: 12 steps take 3 epochs, each evaluated, and the run says why.
    assert metrics["total_steps"] == 12 and [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    assert [h["step"] for h in metrics["history"]] == [4, 8, 12]
    assert "raised from 2 epochs to reach --min-steps 12" in capsys.readouterr().out
    # An epoch count the user typed is kept: one pass, 4 steps.
    assert main([*common, "--epochs", "1", "--output-dir", str(tmp_path / "one")]) == 0
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert metrics["total_steps"] == 4 and [h["epoch"] for h in metrics["history"]] == [1]

