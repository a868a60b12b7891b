"""The accelerate training loop: checkpoints that resume exactly, history.jsonl, precision checks,
and (slow) two processes giving the one-process result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from demo.distill import accel
from demo.distill.cli import main

from .apps import free_port
from .builders import ROOT, make_encoder, write_sentiment_tsv, write_teacher


@pytest.fixture(scope="module")
def loop_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop-data")
    return {"train": write_sentiment_tsv(root / "train.tsv", 192, 0),
            "validation": write_sentiment_tsv(root / "validation.tsv", 50, 1)}  # 50: an uneven last eval batch


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return make_encoder(tmp_path_factory.mktemp("encoder"), 0, num_hidden_layers=2)


def finetune_args(encoder: Path, data: dict, out: Path, *extra: str) -> list[str]:
    return ["finetune", "--model", str(encoder), "--train-file", str(data["train"]), "--validation-file",
            str(data["validation"]), "--epochs", "3", "--min-steps", "0", "--batch-size", "16",
            "--eval-batch-size", "16", "--learning-rate", "3e-3", "--logging-steps", "4", "--output-dir", str(out),
            *extra]


def interrupt_after(monkeypatch, backward_calls: int) -> None:
    """Stop the run as Ctrl-C would, in the middle of an epoch."""
    from accelerate import Accelerator

    original, calls = Accelerator.backward, {"n": 0}

    def backward(self, loss, **kwargs):
        calls["n"] += 1
        if calls["n"] > backward_calls:
            raise KeyboardInterrupt
        return original(self, loss, **kwargs)

    monkeypatch.setattr(Accelerator, "backward", backward)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(encoder, loop_data, tmp_path, monkeypatch, capsys):
    # 192 rows / 16 = 12 steps an epoch, 36 in all; checkpoints every 9 steps (mid-epoch, and at the
    # very end, where checkpoint-36 holds the last step's weights before the best epoch is restored).
    # Dropout is on, so the RNG states must come back too, not only the weights and the data position.
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert main(finetune_args(encoder, loop_data, whole, "--checkpoint-steps", "9")) == 0
    with monkeypatch.context() as patch:
        interrupt_after(patch, 20)  # after the checkpoint at step 18 (mid-epoch 2), two steps into more work
        assert main(finetune_args(encoder, loop_data, stopped, "--checkpoint-steps", "9")) == 130
    assert "--resume-from-checkpoint latest" in capsys.readouterr().err
    assert sorted(p.name for p in (stopped / "checkpoints").iterdir()) == ["checkpoint-18", "checkpoint-9"]
    assert main(finetune_args(encoder, loop_data, stopped, "--checkpoint-steps", "9", "--resume-from-checkpoint",
                              "latest")) == 0
    assert sorted(p.name for p in (stopped / "checkpoints").iterdir()) == ["checkpoint-27", "checkpoint-36"]
    for weights in ("checkpoints/checkpoint-36/model.safetensors", "model.safetensors"):  # last step; best epoch
        a, b = load_file(whole / weights), load_file(stopped / weights)
        assert a.keys() == b.keys()
        assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5, weights
    resumed = json.loads((stopped / "metrics.json").read_text())
    assert resumed["resumed_from"].endswith("checkpoint-18")
    assert resumed["history"] == json.loads((whole / "metrics.json").read_text())["history"]
    # history.jsonl: the lines the stopped run logged after its checkpoint are not there twice
    steps = [json.loads(line)["step"] for line in (stopped / "history.jsonl").read_text().splitlines()]
    assert steps == [json.loads(line)["step"] for line in (whole / "history.jsonl").read_text().splitlines()]


def test_a_checkpoint_of_another_model_or_other_settings_is_refused(encoder, loop_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(finetune_args(encoder, loop_data, out, "--checkpoint-steps", "12", "--epochs", "1")) == 0
    other = make_encoder(tmp_path / "other-encoder", 1, num_hidden_layers=2)
    before = sorted(p.name for p in out.rglob("*"))
    capsys.readouterr()  # the first run's progress lines (printed when it takes over 5 s) are not the refusal
    assert main(finetune_args(other, loop_data, out, "--epochs", "1", "--resume-from-checkpoint", "latest")) == 2
    err = capsys.readouterr().err
    assert "was made by another model or other settings: model" in err and len(err.strip().splitlines()) == 1
    assert main(finetune_args(encoder, loop_data, out, "--epochs", "1", "--learning-rate", "1e-3",
                              "--resume-from-checkpoint", "latest")) == 2
    assert "learning_rate (0.003 there, 0.001 now)" in capsys.readouterr().err
    assert sorted(p.name for p in out.rglob("*")) == before  # nothing written by a refused resume
    assert main(finetune_args(encoder, loop_data, tmp_path / "fresh", "--resume-from-checkpoint", "latest")) == 2
    assert "holds no checkpoint" in capsys.readouterr().err


def test_history_jsonl_has_a_line_per_logging_step_and_per_evaluation(encoder, loop_data, tmp_path):
    out = tmp_path / "run"
    assert main(finetune_args(encoder, loop_data, out, "--epochs", "2")) == 0
    rows = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    logged = [r for r in rows if not r.get("evaluated")]
    evaluated = [r for r in rows if r.get("evaluated")]
    assert [r["step"] for r in logged] == [4, 8, 12, 16, 20, 24]
    assert all({"epoch", "lr", "train_loss"} <= set(r) and r["train_loss"] > 0 for r in logged)
    assert logged[-1]["lr"] < logged[0]["lr"]  # linear decay
    assert [(r["epoch"], r["step"]) for r in evaluated] == [(1, 12), (2, 24)]
    assert all(0 <= r["validation_accuracy"] <= 1 for r in evaluated)


def test_distillation_writes_history_with_each_loss_term(loop_data, tmp_path):
    teacher = write_teacher(tmp_path / "teacher")
    out = tmp_path / "student"
    assert main(["distill", "--augment", "0",
                 "--teacher", str(teacher), "--student-layers", "1", "--train-file", str(loop_data["train"]),
                 "--validation-file", str(loop_data["validation"]), "--epochs", "1", "--min-steps", "0", "--batch-size",
                 "16", "--logging-steps", "6", "--alpha-cos", "0.5", "--output-dir", str(out)]) == 0
    logged = next(json.loads(line) for line in (out / "history.jsonl").read_text().splitlines())
    assert {"train_loss", "train_kl", "train_ce", "train_cos"} <= set(logged), logged
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_processes"] == 1 and metrics["mixed_precision"] == "no"


@pytest.mark.parametrize("argv, message", [
    (["--mixed-precision", "fp16"], "--mixed-precision fp16 needs a GPU; this run is on cpu"),
    (["--mixed-precision", "bf16"], "--mixed-precision bf16: this cpu device cannot compute in bfloat16"),
    (["--report-to", "no-such-tracker"], "--report-to no-such-tracker: not a tracker accelerate knows"),
    (["--report-to", "swanlab"], "--report-to swanlab: not installed here; pip install swanlab"),
    (["--gradient-accumulation-steps", "0"], "--gradient-accumulation-steps and --logging-steps must be at least 1"),
])
def test_settings_the_machine_cannot_run_are_refused(encoder, loop_data, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(accel, "bf16_supported", lambda device_type: False)  # a device without bfloat16
    out = tmp_path / "out"
    assert main(finetune_args(encoder, loop_data, out, "--device", "cpu", *argv)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bf16_runs_on_a_cpu_that_has_it(encoder, loop_data, tmp_path):
    out = tmp_path / "bf16"
    assert main(finetune_args(encoder, loop_data, out, "--device", "cpu", "--mixed-precision", "bf16", "--epochs", "1",
                              "--gradient-accumulation-steps", "2")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mixed_precision"] == "bf16" and metrics["total_steps"] == 6  # 12 batches / 2 per step
    assert next(iter(load_file(out / "model.safetensors").values())).dtype == torch.float32  # weights stay fp32


@pytest.mark.slow
def test_two_processes_give_the_one_process_result(tmp_path, loop_data):
    """`accelerate launch --multi_gpu --num_processes 2` (CPU processes over gloo here) against one process,
    same global batch. Dropout off: then the two runs differ only in the order of floating-point sums
    (the all-reduce of two half-batch gradients against one full-batch gradient), so the weights agree
    to ~1e-6 and the validation accuracy exactly."""
    teacher = write_teacher(tmp_path / "teacher", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    common = ["distill", "--augment", "0", "--teacher", str(teacher), "--student-layers", "1", "--student-arch", "bert",
              "--train-file", str(loop_data["train"]), "--validation-file", str(loop_data["validation"]),
              "--epochs", "2",
              "--min-steps", "0", "--batch-size", "16", "--eval-batch-size", "16", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # Each run computes its own soft targets (no shared cache): equal weights then also show that the
    # two processes' shares of the teacher pass were put back together in the right order.
    one = subprocess.run([sys.executable, "-m", "demo.distill", *common, "--targets-cache-dir", "none",
                          "--output-dir", str(tmp_path / "one")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "--main_process_port", str(free_port()), "-m", "demo.distill", *common,
                          "--targets-cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "two")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m1["num_processes"] == 1 and m2["num_processes"] == 2
    assert m2["student_accuracy"] == m1["student_accuracy"] and m2["total_steps"] == m1["total_steps"]
    for h1, h2 in zip(m1["history"], m2["history"], strict=True):
        assert h2["validation_accuracy"] == h1["validation_accuracy"]
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], abs=1e-4)
    a, b = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-4
    # the soft targets went through the teacher once in all, shared by the two processes
    assert "computed once over 2 processes" in two.stdout, two.stdout
    assert two.stdout.count("teacher soft targets for") == 1 and "\r" not in two.stdout + two.stderr
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1  # written once, by the main process


def test_streamed_transfer_text_is_trained_on_as_it_is_read(loop_data, tmp_path):
    from .builders import FILLER, NEGATIVE, POSITIVE

    teacher = write_teacher(tmp_path / "teacher")
    words = FILLER + POSITIVE + NEGATIVE
    transfer = tmp_path / "transfer.tsv"  # CSV-quoted, fields spanning lines: read by datasets as a stream
    transfer.write_text("text\tsource\n" + "".join(f'"{words[i % 19]} {words[(i * 7) % 19]}\n{words[i % 23]}"\tweb\n'
                                                      for i in range(500)), encoding="utf-8")
    out = tmp_path / "student"
    common = ["distill", "--augment", "0",
              "--teacher", str(teacher), "--student-layers", "1", "--train-file", str(loop_data["train"]),
              "--validation-file", str(loop_data["validation"]), "--epochs", "1", "--min-steps", "0", "--batch-size",
              "16", "--transfer-file", str(transfer), "--streaming"]
    assert main([*common, "--max-transfer-samples", "300", "--output-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["labelled"] == 192 and metrics["data"]["transfer"] == 300
    assert metrics["total_steps"] == -(-(192 + 300) // 16) and metrics["transfer_files"][0]["streamed"] is True
    assert metrics["soft_targets"][0]["name"] == "labelled"  # cached for the labelled rows; the stream's: online


@pytest.mark.parametrize("extra, message", [
    (["--max-transfer-samples", "900"], "--max-transfer-samples 900: the transfer stream holds only 500 texts"),
    ([], "--streaming reads the transfer files as a stream: give --transfer-file and --max-transfer-samples N"),
    (["--max-transfer-samples", "10", "--transfer-cache", "x.safetensors"], "it takes neither --transfer-cache"),
])
def test_streaming_refuses_what_it_cannot_do(loop_data, tmp_path, capsys, extra, message):
    teacher = write_teacher(tmp_path / "teacher")
    transfer = tmp_path / "transfer.txt"
    transfer.write_text("".join(f"text number {i}\n" for i in range(500)))
    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(teacher), "--train-file", str(loop_data["train"]), "--validation-file",
                 str(loop_data["validation"]), "--transfer-file", str(transfer), "--streaming", *extra,
                 "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_stopped_distillation_resumes_with_its_teacher_and_refuses_another(loop_data, tmp_path, monkeypatch, capsys):
    teacher = write_teacher(tmp_path / "teacher")
    common = ["distill", "--augment", "0",
              "--teacher", str(teacher), "--student-layers", "1", "--train-file", str(loop_data["train"]),
              "--validation-file", str(loop_data["validation"]), "--epochs", "1", "--min-steps", "0",
              "--batch-size", "16",
              "--checkpoint-steps", "5", "--output-dir", str(tmp_path / "student")]
    with monkeypatch.context() as patch:
        interrupt_after(patch, 7)
        assert main(common) == 130
    other = write_teacher(tmp_path / "other", hidden_dropout_prob=0.2)  # another teacher directory
    other_args = [str(other) if a == str(teacher) else a for a in common]
    assert main([*other_args, "--resume-from-checkpoint", "latest"]) == 2
    assert "teacher" in capsys.readouterr().err
    assert main([*common, "--resume-from-checkpoint", "latest"]) == 0
    metrics = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-5") and metrics["total_steps"] == 12


@pytest.mark.slow  # two streamed runs, one interrupted: ~5 s (the in-memory resume runs in the default tier)
def test_a_streaming_run_resumes_exactly_too(loop_data, tmp_path, monkeypatch):
    """A stream's pass is resumed by skipping rows inside it, and starting the pass must not move the
    dropout RNG: the last step's weights equal an uninterrupted run's."""
    teacher = write_teacher(tmp_path / "teacher")
    transfer = tmp_path / "transfer.txt"
    transfer.write_text("".join(f"text number {i} good film bad day\n" for i in range(300)))
    common = ["distill", "--augment", "0",
              "--teacher", str(teacher), "--student-layers", "1", "--train-file", str(loop_data["train"]),
              "--validation-file", str(loop_data["validation"]), "--epochs", "2", "--min-steps", "0",
              "--batch-size", "16",
              "--transfer-file", str(transfer), "--streaming", "--max-transfer-samples", "200",
              "--checkpoint-steps", "8", "--keep-checkpoints", "0"]
    assert main([*common, "--output-dir", str(tmp_path / "whole")]) == 0
    with monkeypatch.context() as patch:
        interrupt_after(patch, 27)  # past checkpoint-24, in the second pass over labelled + streamed rows
        assert main([*common, "--output-dir", str(tmp_path / "stopped")]) == 130
    assert main([*common, "--output-dir", str(tmp_path / "stopped"), "--resume-from-checkpoint", "latest"]) == 0
    steps = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "whole" / "checkpoints").iterdir())
    last = f"checkpoints/checkpoint-{steps[-1]}/model.safetensors"
    a, b = load_file(tmp_path / "whole" / last), load_file(tmp_path / "stopped" / last)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5
