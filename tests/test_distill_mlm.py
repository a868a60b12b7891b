"""General distillation (--objective mlm) end to end on tiny models: the CLI steps, the evaluator's
fill-mask report, the app loading the produced pair, resuming, two processes, publishing."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertForMaskedLM,
    pipeline,
)

from demo.distill.cli import main
from demo.evaluate import main as evaluate_main

from .apps import InProcessApp, call_when_ready


def test_the_cli_aligns_every_layer_when_asked(mlm_teacher, texts_file, tmp_path):
    out = tmp_path / "layers"
    assert main(["distill", "--objective", "mlm", "--teacher", str(mlm_teacher), "--train-file", str(texts_file),
                 "--student-layers", "2", "--max-steps", "4", "--batch-size", "16", "--cos-layers", "all",
                 "--alpha-hidden", "0.5", "--learning-rate", "1e-3", "--output-dir", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["loss_weights"]["alpha_hidden"] == 0.5 and m["args"]["cos_layers"] == "all"
    assert m["args"]["learning_rate"] == 1e-3  # a given learning rate wins over the objective's default
    assert {"train_cos", "train_hidden"} <= set(m["history"][-1])
    card = (out / "README.md").read_text()
    assert "0.5 × MSE between every student layer's hidden states" in card
    assert "those of the teacher layer it was copied from" in card



# ---- the CLI steps ---------------------------------------------------------------------------------
def test_adapting_a_bare_encoder_adds_a_head_and_says_so(mlm_teacher):
    metrics = json.loads((mlm_teacher / "metrics.json").read_text())
    assert metrics["head_added"] is True and metrics["objective"] == "mlm"
    first, last = metrics["history"][0], metrics["history"][-1]
    assert len(metrics["history"]) == 2 and last["train_loss"] < first["train_loss"]  # two epochs, each evaluated
    teacher, n_masked = metrics["masked_lm"]["teacher"], metrics["masked_lm"]["n_masked"]
    assert teacher["top1_accuracy"] < teacher["top5_accuracy"]  # five guesses find more than one
    for share in (teacher["top1_accuracy"], teacher["top5_accuracy"]):  # shares of the masked tokens
        assert share * n_masked == pytest.approx(round(share * n_masked), abs=1e-6)
    assert isinstance(AutoModelForMaskedLM.from_pretrained(mlm_teacher), BertForMaskedLM)


def test_general_distillation_writes_a_fill_mask_student(mlm_student):
    model = AutoModelForMaskedLM.from_pretrained(mlm_student)
    assert type(model).__name__ == "DistilBertForMaskedLM" and model.config.n_layers == 2
    tok = AutoTokenizer.from_pretrained(mlm_student)
    assert "token_type_ids" not in tok("the film")  # DistilBERT: no token types
    guesses = pipeline("fill-mask", model=str(mlm_student), device="cpu")("the film was [MASK] .")
    assert len(guesses) == 5
    m = json.loads((mlm_student / "metrics.json").read_text())
    r = m["masked_lm"]
    assert {"top1_accuracy", "top5_accuracy", "pseudo_perplexity", "masked_perplexity"} <= set(r["student"])
    assert r["retention_top1"] == pytest.approx(r["student"]["top1_accuracy"] / r["teacher"]["top1_accuracy"])
    assert 0 <= r["agreement_top1"] <= 1 and r["speedup"] > 0
    assert m["loss_weights"] == {"temperature": 2.0, "alpha_ce": 5.0, "alpha_mlm": 2.0, "alpha_cos": 1.0,
                                 "alpha_hidden": 0.0}
    assert {"train_kl", "train_mlm", "train_cos"} <= set(m["history"][-1])
    # the loop's score (fixed masks, gathered per row) is the final report's top-1, on the same masks
    assert max(row["validation_accuracy"] for row in m["history"]) == pytest.approx(
        r["student"]["top1_accuracy"], abs=1.5 / r["n_masked"])
    assert m["eval_sets"]["again"]["n_texts"] > 0
    names = [b["name"] for b in m["baselines"]]
    assert names == ["layer dropping alone (no training)", "MLM loss alone (no teacher), same text and budget"]
    for b in m["baselines"]:
        assert type(AutoModelForMaskedLM.from_pretrained(mlm_student / b["path"])).__name__ == "DistilBertForMaskedLM"
        # paired on the same tokens: the difference of the discordant counts is the difference of the accuracies
        p = b["paired_top1"]
        assert p["n_masked"] == r["n_masked"]
        assert p["student_right_baseline_wrong"] - p["baseline_right_student_wrong"] == round(
            (r["student"]["top1_accuracy"] - b["masked_lm"]["student"]["top1_accuracy"]) * r["n_masked"])
    dropped = m["baselines"][0]["paired_top1"]  # the untrained student guesses differently somewhere
    assert dropped["student_right_baseline_wrong"] + dropped["baseline_right_student_wrong"] > 0
    card = (mlm_student / "README.md").read_text()
    assert "pipeline_tag: fill-mask" in card and "What the teacher adds" in card and "triple loss" in card
    assert "McNemar" in card
    assert m["args"]["learning_rate"] == 3e-4 and "learning rate 0.0003" in card  # the mlm default
    held_out = (mlm_student / "heldout_texts.txt").read_text().splitlines()
    assert len(held_out) == r["n_texts"]


def test_held_out_texts_are_the_same_for_teacher_and_student(mlm_teacher, mlm_student):
    assert (mlm_teacher / "heldout_texts.txt").read_text() == (mlm_student / "heldout_texts.txt").read_text()


def test_the_evaluator_reproduces_the_runs_figures(mlm_teacher, mlm_student, tmp_path, capsys):
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump({"device": "cpu", "tasks": {"fill_mask": {
        "teacher": {"model": str(mlm_teacher)}, "student": {"model": str(mlm_student)}}}}))
    assert evaluate_main(["--config", str(config), "--task", "fill_mask", "--file",
                          str(mlm_student / "heldout_texts.txt"), "--out", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    run = json.loads((mlm_student / "metrics.json").read_text())["masked_lm"]
    for variant in ("teacher", "student"):
        for key in ("top1_accuracy", "top5_accuracy", "pseudo_perplexity"):
            assert report[variant][key] == pytest.approx(run[variant][key], rel=1e-5)
    assert report["agreement_top1"] == pytest.approx(run["agreement_top1"])
    assert "top-1 masked-token accuracy" in (tmp_path / "report" / "report.md").read_text()


def test_the_evaluator_compares_the_student_with_a_baseline_token_by_token(mlm_teacher, mlm_student, tmp_path):
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump({"device": "cpu", "tasks": {"fill_mask": {
        "teacher": {"model": str(mlm_teacher)}, "student": {"model": str(mlm_student)}}}}))
    common = ["--config", str(config), "--task", "fill_mask", "--file", str(mlm_student / "heldout_texts.txt")]
    run = json.loads((mlm_student / "metrics.json").read_text())
    baseline = mlm_student / "baselines" / "layer-drop"  # differs from the student somewhere
    assert evaluate_main([*common, "--against", str(baseline), "--out", str(tmp_path / "vs-dropped")]) == 0
    report = json.loads((tmp_path / "vs-dropped" / "report.json").read_text())
    against = report["against"]
    assert against["student"]["top1_accuracy"] == pytest.approx(
        run["baselines"][0]["masked_lm"]["student"]["top1_accuracy"], rel=1e-5)
    paired = against["paired_top1"]  # the same figures as the run's own paired comparison
    assert paired["student_right_against_wrong"] == run["baselines"][0]["paired_top1"]["student_right_baseline_wrong"]
    assert paired["against_right_student_wrong"] == run["baselines"][0]["paired_top1"]["baseline_right_student_wrong"]
    b, c = paired["student_right_against_wrong"], paired["against_right_student_wrong"]
    assert b + c > 0 and paired["mcnemar_z"] == pytest.approx((b - c) / (b + c) ** 0.5, abs=1e-3)
    assert "McNemar z" in (tmp_path / "vs-dropped" / "report.md").read_text()
    # a student against itself differs on no token
    assert evaluate_main([*common, "--against", str(mlm_student), "--out", str(tmp_path / "vs-self")]) == 0
    itself = json.loads((tmp_path / "vs-self" / "report.json").read_text())["against"]["paired_top1"]
    assert itself["student_right_against_wrong"] == itself["against_right_student_wrong"] == 0
    assert itself["mcnemar_z"] is None


def test_the_evaluator_refuses_an_against_model_that_does_not_load(mlm_teacher, mlm_student, tmp_path, capsys):
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump({"device": "cpu", "tasks": {"fill_mask": {
        "teacher": {"model": str(mlm_teacher)}, "student": {"model": str(mlm_student)}}}}))
    assert evaluate_main(["--config", str(config), "--task", "fill_mask", "--file",
                          str(mlm_student / "heldout_texts.txt"), "--against", str(tmp_path / "missing"),
                          "--out", str(tmp_path / "out")]) == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_produced_pair_loads_in_the_fill_mask_tab(mlm_teacher, mlm_student, tmp_path):
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump({"device": "cpu", "tasks": {"fill_mask": {
        "teacher": {"model": str(mlm_teacher)}, "student": {"model": str(mlm_student)}}}}))
    server = InProcessApp(config)
    try:
        summary = call_when_ready(server.client(), "the film was [MASK] .", "/fill_mask")
        for variant in ("teacher", "student"):
            assert summary[variant]["completed"].startswith("the film was ")
        assert 0.0 <= summary["top5_overlap"] <= 1.0
    finally:
        server.stop()


def test_the_general_student_fine_tunes_as_a_classifier(mlm_student, tmp_path):
    """The downstream check's step: `finetune` takes the fill-mask student (and its baselines) as the encoder."""
    from .builders import write_sentiment_tsv

    train, val = write_sentiment_tsv(tmp_path / "train.tsv", 64, 0), write_sentiment_tsv(tmp_path / "val.tsv", 16, 1)
    for name, model in (("distilled", mlm_student), ("layer-drop", mlm_student / "baselines" / "layer-drop")):
        out = tmp_path / name
        assert main(["finetune", "--model", str(model), "--train-file", str(train), "--validation-file", str(val),
                     "--epochs", "1", "--min-steps", "0", "--batch-size", "16", "--output-dir", str(out)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert 0 <= metrics["accuracy"] <= 1 and metrics["n_train"] == 64
        assert type(AutoModelForMaskedLM.from_pretrained(model)).__name__ == "DistilBertForMaskedLM"


def test_an_mlm_run_resumes_exactly(bare_encoder_dir, texts_file, tmp_path):
    """Dynamic masks come from the global RNG, which checkpoints keep: a resumed run draws the same masks."""
    from safetensors.torch import load_file

    common = ["finetune", "--objective", "mlm", "--model", str(bare_encoder_dir), "--train-file", str(texts_file),
              "--max-steps", "8", "--min-steps", "0", "--epochs", "1", "--batch-size", "16", "--learning-rate", "3e-3"]
    assert main([*common, "--output-dir", str(tmp_path / "whole")]) == 0
    assert main([*common, "--output-dir", str(tmp_path / "split"), "--checkpoint-steps", "4",
                 "--keep-checkpoints", "0"]) == 0
    assert main([*common, "--output-dir", str(tmp_path / "split"), "--checkpoint-steps", "4",
                 "--resume-from-checkpoint", str(tmp_path / "split" / "checkpoints" / "checkpoint-4")]) == 0
    whole, resumed = (load_file(tmp_path / d / "model.safetensors") for d in ("whole", "split"))
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_the_distillation_tab_charts_a_general_distillation_run(mlm_student, mlm_teacher):
    from demo.measuring.charts import (
        recipe_comparison_chart,
        retention_chart,
        run_size_speed_chart,
        training_curves,
    )
    from demo.serving.evidence import Evidence, EvidenceError

    evidence = Evidence.from_dir(mlm_student)
    r = evidence.metrics["masked_lm"]
    figures = evidence.figures
    assert figures["score_name"] == "held-out top-1 masked-token accuracy"
    recipes = recipe_comparison_chart(figures).data[0]
    assert list(recipes.x) == pytest.approx([r["teacher"]["top1_accuracy"], r["student"]["top1_accuracy"]] +
                                            [b["masked_lm"]["student"]["top1_accuracy"]
                                             for b in evidence.metrics["baselines"]])
    assert retention_chart(figures).data[0].y[0] == pytest.approx(r["retention_top1"])
    assert "speedup" in run_size_speed_chart(figures).layout.annotations[1].text
    curves = training_curves(evidence.history, figures["score_name"])
    assert curves.layout.annotations[1].text == "Held-out top-1 masked-token accuracy"
    assert curves.layout.xaxis2.matches == "x"  # a one-epoch run's single score shares the loss panel's steps
    assert "raw text" in evidence.recipe_markdown()
    with pytest.raises(EvidenceError, match="shows no student"):
        Evidence.from_dir(mlm_teacher)  # an adapted teacher: no student to show


@pytest.mark.slow
def test_general_distillation_runs_on_two_processes(mlm_teacher, texts_file, tmp_path):
    """`accelerate launch --num_processes 2` (CPU processes over gloo): one output, written once, its held-out
    figures over every held-out text (gathered, not duplicated). Each process masks its own half-batch, so
    the weights are not the one-process run's."""
    import os
    import subprocess
    import sys

    from .apps import free_port
    from .builders import ROOT

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "two"
    run = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "--main_process_port", str(free_port()), "-m", "demo.distill", "distill", "--objective",
                          "mlm", "--teacher", str(mlm_teacher), "--train-file", str(texts_file), "--student-layers",
                          "2", "--epochs", "1", "--min-steps", "0", "--batch-size", "16", "--eval-batch-size", "16",
                          "--device", "cpu", "--output-dir", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    teacher = json.loads((mlm_teacher / "metrics.json").read_text())["masked_lm"]
    assert metrics["num_processes"] == 2 and run.stdout.count("student saved to") == 1
    assert metrics["masked_lm"]["n_masked"] == teacher["n_masked"]
    assert metrics["masked_lm"]["teacher"]["top1_accuracy"] == pytest.approx(teacher["teacher"]["top1_accuracy"])
    # the loop's own gathered score of the best pass is the final held-out top-1 of the saved student
    best = max(row["validation_accuracy"] for row in metrics["history"])
    assert best == pytest.approx(metrics["masked_lm"]["student"]["top1_accuracy"],
                                 abs=1.5 / metrics["masked_lm"]["n_masked"])  # padding may flip one near-tie


def test_publishing_a_general_student_leaves_training_state_baselines_and_data_behind(mlm_student, capsys):
    assert main(["push", "--output-dir", str(mlm_student), "--repo-id", "me/tiny-mlm", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "me/tiny-mlm/model.safetensors" in printed and "me/tiny-mlm/README.md" in printed
    assert "me/tiny-mlm/training/demo/distill/general.py" in printed
    assert "baselines/" not in printed and "heldout_texts" not in printed and "checkpoints/" not in printed


def test_the_held_out_sample_does_not_depend_on_seed_or_file_order(tmp_path):
    from demo.distill.args import DataArguments
    from demo.distill.masked_text import read_corpus

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("".join(f"first file text {i}\n" for i in range(3000)))
    b.write_text("".join(f"second file text {i}\n" for i in range(3000)))
    text = lambda files, n: DataArguments(train_file=files, objective="mlm", validation_split_percentage=10.0,
                                          max_train_samples=n, max_eval_samples=50)
    one = read_corpus(text([str(a), str(b)], 1000), seed=1)
    two = read_corpus(text([str(b), str(a)], 2000), seed=2)
    assert sorted(one.validation) == sorted(two.validation) and len(one.validation) == 50
    assert not set(one.validation) & set(one.train) and not set(two.validation) & set(two.train)
    assert len(one.train) == 1000 and one.train != two.train[:1000]

