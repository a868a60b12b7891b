"""The benchmark sweep, ONNX variants and architecture-only mode, on tiny models."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from gradio_client.exceptions import AppError

from demo.bench import main as bench_main
from demo.core.measure import interleaved_timing
from demo.measuring.sweep import BenchSettings, sweep
from demo.models import onnx_variants, openvino_variants
from demo.models.architecture import build_random
from demo.models.config import ModelSpec, load_config
from demo.models.inputs import GENERIC_SENTENCES
from demo.models.loading import load_model
from demo.models.tasks import predict

from .apps import call, call_when_ready

RECORD_KEYS = {"task", "variant", "model", "batch_size", "seq_len", "p50_ms", "p95_ms", "min_ms", "throughput",
               "params", "disk_bytes", "memory_bytes", "device", "dtype", "model_p50_ms", "model_p95_ms"}


@pytest.fixture(scope="module")
def bench_out(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    rc = bench_main(["--config", str(tiny_config), "--tasks", "classify,fill_mask", "--batch-sizes", "1,2",
                     "--seq-lens", "8,16", "--repeats", "20", "--warmup", "1", "--threads", "1", "--out", str(out)])
    assert rc == 0
    return out


def test_sweep_writes_all_three_files_with_the_promised_fields(bench_out):
    data = json.loads((bench_out / "bench.json").read_text())
    records = data["records"]
    assert len(records) == 2 * 4 * 2 * 2  # tasks x variants x batch sizes x sequence lengths
    for record in records:
        assert set(record) >= RECORD_KEYS
        assert record["min_ms"] <= record["p50_ms"] <= record["p95_ms"]
        assert record["throughput"] == pytest.approx(record["batch_size"] / (record["p50_ms"] / 1000))
    assert {r["variant"] for r in records} == {"teacher", "student", "student-onnx-fp32", "student-onnx-int8"}
    teacher_p50 = {(r["task"], r["batch_size"], r["seq_len"]): r["p50_ms"]
                   for r in records if r["variant"] == "teacher"}
    for r in records:  # every speedup over the teacher with its 95% interval, from the same interleaved rounds
        if r["variant"] != "teacher":
            speedup = teacher_p50[(r["task"], r["batch_size"], r["seq_len"])] / r["p50_ms"]
            assert r["speedup_low"] <= speedup <= r["speedup_high"]
    env = data["environment"]
    assert env["threads"] == 1 and {"cpu", "torch", "onnxruntime", "openvino", "transformers"} <= set(env)
    md = (bench_out / "bench.md").read_text()
    assert "| classify | student-onnx-int8 | 2 | 16 |" in md and "speedup [95%]" in md
    assert "plotly" in (bench_out / "bench.html").read_text()


def test_int8_weights_are_smaller_on_disk(bench_out):
    records = json.loads((bench_out / "bench.json").read_text())["records"]
    disk = {r["variant"]: r["disk_bytes"] for r in records if r["task"] == "classify"}
    assert disk["student-onnx-int8"] < disk["student-onnx-fp32"]
    params = {r["variant"]: r["params"] for r in records if r["task"] == "classify"}
    assert params["student-onnx-int8"] == params["student"]  # same architecture, other runtime


@pytest.mark.parametrize("task", ["classify", "fill_mask"])
def test_onnx_variants_agree_with_the_student(tiny_config, task, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_variants, "CACHE_ROOT", tmp_path)
    config = load_config(tiny_config)
    student = load_model(config.pairs[task].student, task, torch.device("cpu"))
    texts = (["the film was [MASK]", "i feel [MASK] today", "a [MASK] day in paris"] if task == "fill_mask" else
        ["the film was good", "i hate this", "what a happy day"])
    for int8 in (False, True):
        onnx = onnx_variants.export(student, int8=int8, threads=1)
        for text in texts:
            a, b = predict(student, text), predict(onnx, text)
            assert a.label == b.label
            assert a.score == pytest.approx(b.score, abs=1e-4 if not int8 else 5e-2)


@pytest.mark.parametrize("task", ["classify", pytest.param("fill_mask", marks=pytest.mark.slow)])  # ~4 s each
def test_the_openvino_int8_student_answers_like_the_student_and_is_timed_by_the_benchmark(tiny_config, task, tmp_path,
                                                                                          monkeypatch):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    monkeypatch.setattr(onnx_variants, "CACHE_ROOT", tmp_path / "cache")
    config = load_config(tiny_config)
    student = load_model(config.pairs[task].student, task, torch.device("cpu"))
    int8 = openvino_variants.export(student, GENERIC_SENTENCES, threads=1)
    assert int8.runtime == "openvino" and int8.dtype == "int8"
    texts = (["the film was [MASK]", "i feel [MASK] today"] if task == "fill_mask" else
             ["the film was good", "i hate this"])
    for text in texts:  # random tiny weights: scores are near-flat, so compare scores, not labels
        assert predict(int8, text).score == pytest.approx(predict(student, text).score, abs=5e-2)
    settings = BenchSettings(tasks=[task], variants=["teacher", "student", "student-openvino-int8"], batch_sizes=[2],
                             seq_lens=[16], repeats=20, warmup=1, threads=1)
    result = sweep(config, settings)
    record = next(r for r in result.records if r.variant == "student-openvino-int8")
    assert record.runtime == "openvino" and record.dtype == "int8" and record.p50_ms > 0 and record.params > 0


def test_int8_keeps_the_outlier_prone_matmuls_in_fp32(tiny_config, tmp_path, monkeypatch):
    import onnx

    monkeypatch.setattr(onnx_variants, "CACHE_ROOT", tmp_path)
    config = load_config(tiny_config)
    pair = config.pairs["classify"]
    for spec in (pair.student, pair.teacher):  # DistilBERT and BERT name their layers differently
        model = load_model(spec, "classify", torch.device("cpu"))
        int8 = onnx_variants.export(model, int8=True, threads=1)
        nodes = {n.name: n.op_type for n in onnx.load(str(int8.weight_files[0])).graph.node}
        first_ffn_out = [n for n in nodes if onnx_variants.FIRST_FFN_OUTPUT.search(n)]
        assert len(first_ffn_out) == 1 and nodes[first_ffn_out[0]] == "MatMul"  # left in fp32
        assert any(t == "MatMulInteger" for t in nodes.values())  # the rest is int8
        attention = [n for n in nodes if n.endswith(("attention/MatMul", "self/MatMul"))]
        assert attention and all(nodes[n] == "MatMul" for n in attention)  # activation x activation: fp32


@pytest.mark.slow  # builds BERT-base and DistilBERT-base at full size: ~700 MB written
def test_architecture_only_builds_the_real_shapes(tmp_path):
    spec_t, spec_s = ModelSpec("google-bert/bert-base-uncased"), ModelSpec("distilbert/distilbert-base-uncased")
    teacher, source = build_random(spec_t, "sentiment", "teacher", torch.device("cpu"), workdir=tmp_path)
    student, _ = build_random(spec_s, "sentiment", "student", torch.device("cpu"), workdir=tmp_path)
    assert "built-in BERT-base shape" in source  # no network, nothing cached: the published shape
    tc, sc = teacher.model.config, student.model.config
    assert (tc.num_hidden_layers, tc.hidden_size, tc.intermediate_size, tc.vocab_size) == (12, 768, 3072, 30522)
    assert (sc.n_layers, sc.dim, sc.hidden_dim) == (6, 768, 3072)
    params_t = sum(p.numel() for p in teacher.model.parameters())
    params_s = sum(p.numel() for p in student.model.parameters())
    assert params_t == pytest.approx(109.48e6, rel=0.01) and params_s == pytest.approx(66.95e6, rel=0.01)
    assert teacher.random_weights and teacher.tokenizer is None


def test_architecture_only_sweep_says_weights_are_random_and_leaves_nothing_behind(tiny_config, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setattr(onnx_variants, "CACHE_ROOT", tmp_path / "cache")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    config = load_config(tiny_config)
    result = sweep(config, BenchSettings(tasks=["sentiment"], variants=["teacher", "student", "student-onnx-int8"],
                                         batch_sizes=[1], seq_lens=[8], repeats=20, warmup=1, threads=1,
                                         architecture_only=True))
    assert len(result.records) == 3 and all(r.random_weights for r in result.records)
    assert any("random weights" in n.lower() and "meaningless" in n.lower() for n in result.notes)
    # random weights and their ONNX exports are hundreds of MB at real sizes: none of it is kept
    assert not (tmp_path / "cache").exists() and not any((tmp_path / "tmp").iterdir())


def test_a_cancelled_sweep_keeps_what_it_measured(tiny_config):
    config = load_config(tiny_config)
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        # checked once a round and before each of its 4 timed calls (two variants, end to end and model only):
        # the first point's 20 rounds use 100 checks and complete, the second's do not
        return calls["n"] > 110

    result = sweep(config, BenchSettings(tasks=["classify"], variants=["teacher", "student"], batch_sizes=[1, 2],
                                         seq_lens=[8], repeats=20, warmup=0, threads=1), stop=stop)
    assert result.interrupted
    # teacher and student are timed interleaved, so a point is kept whole or not at all
    assert [(r.variant, r.batch_size) for r in result.records] == [("teacher", 1), ("student", 1)]
    assert all(r.p50_ms > 0 and r.repeats == 20 for r in result.records)


def test_bad_arguments_are_refused(tiny_config, tmp_path, capsys):
    assert bench_main(["--config", str(tiny_config), "--repeats", "5", "--out", str(tmp_path)]) == 2
    assert "at least 20" in capsys.readouterr().err
    assert bench_main(["--config", str(tiny_config), "--tasks", "translate", "--out", str(tmp_path)]) == 2
    assert "not in the config" in capsys.readouterr().err


def test_benchmark_tab_through_the_api(client):
    call_when_ready(client, "warm", "/classify")
    records, table, _chart, files = call(client, "classify", ["teacher", "student"], "1", "8", 20, False,
                                                   api_name="/benchmark")
    assert len(records["records"]) == 2 and "| classify | student | 1 | 8 |" in table
    assert sorted(f.rsplit("/", 1)[-1] for f in files) == ["bench.html", "bench.json", "bench.md"]
    with pytest.raises(AppError, match="batch sizes"):
        call(client, "classify", ["teacher"], "zero", "8", 20, False, api_name="/benchmark")


def test_the_cli_and_the_tab_refuse_the_same_settings_alike(client, tiny_config, tmp_path, capsys):
    # One settings dataclass behind both: the same rule, the same message, nothing measured.
    message = ("the int8 and exported variants are compared with the fp32 model they are made from: add the student "
               "variant.")
    assert bench_main(["--config", str(tiny_config), "--tasks", "classify", "--variants", "teacher,student-onnx-int8",
                       "--out", str(tmp_path / "cli")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"
    with pytest.raises(AppError) as refused:
        call(client, "classify", ["teacher", "student-onnx-int8"], "1", "8", 20, False, api_name="/benchmark")
    assert message in str(refused.value)
    for batch_sizes, repeats in (("0", 20), ("1", 5)):
        with pytest.raises(AppError) as tab_error:
            call(client, "classify", ["teacher"], batch_sizes, "8", repeats, False, api_name="/benchmark")
        assert bench_main(["--config", str(tiny_config), "--tasks", "classify", "--batch-sizes", batch_sizes,
                           "--seq-lens", "8", "--repeats", str(repeats), "--out", str(tmp_path / "cli")]) == 2
        assert capsys.readouterr().err.strip().removeprefix("error: ") in str(tab_error.value)
    assert not (tmp_path / "cli").exists()


@pytest.mark.slow  # its own app, an ONNX export and a random-weights build: ~10 s
def test_app_shows_the_onnx_column_and_the_random_weights_fallback(tiny_config, tmp_path):
    import time

    import yaml

    from demo.core.scratch import remove_all
    from demo.serving.task_tab import TaskHandlers

    from .apps import InProcessApp

    raw = yaml.safe_load(Path(tiny_config).read_text())
    raw["tasks"]["classify"]["int8"] = True
    raw["tasks"]["sentiment"]["teacher"]["model"] = str(tmp_path / "gone")
    path = tmp_path / "pairs.yaml"
    path.write_text(yaml.safe_dump(raw))
    app = InProcessApp(path)
    try:
        c = app.client()
        deadline = time.monotonic() + 90
        while True:  # the int8 column joins once its exports are done and timed; the task answers before that
            summary = call_when_ready(c, "i feel happy", "/classify", timeout=90)
            if "student-int8" in summary or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        int8 = summary["student-int8"]
        assert int8["dtype"] == "int8" and int8["latency_ms"] > 0 and isinstance(int8["agrees_with_student"], bool)
        assert "student-int8" in call(c, "i feel happy", api_name="/page_classify")[4]  # the page's verdict
        status = "".join(s.reason for s in app.registry.status("classify") if s.variant == "student-int8")
        assert "the fastest here" in status and "ms" in status  # which backend, and both timings
        with pytest.raises(AppError, match="failed to load"):
            call(c, "good", api_name="/sentiment")
        # the page's button (not an API endpoint: administrative)
        TaskHandlers(app.registry, None, "sentiment").random_weights()
        deadline = time.monotonic() + 60
        while True:
            try:
                result = call(c, "good film", api_name="/page_sentiment")
                break
            except AppError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        assert result[0]["random_weights"] is True
        assert "Random weights: no answer is shown" in result[3]
        assert not (result[1] or {}).get("value")  # no answer displayed (only the title of the model)
        written = [m.weight_files[0].parent for m in app.registry.pair("sentiment")]
        assert all(folder.is_dir() for folder in written)  # the random weights, written while serving
    finally:
        app.stop()
    remove_all("architecture-only-")  # what the app does at exit (here: only these, others' folders stay)
    assert not any(folder.exists() for folder in written)


def test_variants_are_timed_round_robin_so_drift_hits_them_alike():
    order = []
    stats = interleaved_timing({"teacher": lambda: order.append("t"), "student": lambda: order.append("s")},
                               "cpu", repeats=4, warmup=1)
    assert "".join(order) == "ts" + "ts" "st" "ts" "st"  # warm-up, then rounds in alternating order
    assert stats["teacher"].n == stats["student"].n == 4


def test_progress_counts_measurements_up_to_the_total(tiny_config):
    seen = []
    sweep(load_config(tiny_config), BenchSettings(tasks=["classify"], variants=["teacher", "student"],
                                                  batch_sizes=[1, 2],
                                                  seq_lens=[8], repeats=20, warmup=0, threads=1),
          progress=lambda done, total, what: seen.append((done, total, what)))
    assert [(d, t) for d, t, _ in seen] == [(0, 4), (2, 4), (4, 4)]  # before each point, then finished
    assert "batch 2 × 8 tokens" in seen[1][2]


@pytest.mark.slow  # starts the app and a trivial Gradio app: ~20 s
def test_the_serving_benchmark_measures_the_app_against_the_floor(tiny_config, tmp_path):
    from demo.bench_serving import main as serving_main

    assert serving_main(["--config", str(tiny_config), "--requests", "8", "--users", "2", "--per-user", "3",
                         "--load-tasks", "sentiment,fill_mask", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "serving.json").read_text())
    assert report["app_round_trip_p50_ms"] > report["models_p50_ms"] > 0 and report["trivial_round_trip_p50_ms"] > 0
    for load in (report["load_app"], report["load_trivial"]):
        assert load["answered"] == load["requests"] == 6 and load["errors"] == 0 and load["throughput_rps"] > 0
    assert report["load_ratio"] == pytest.approx(report["load_app"]["throughput_rps"] /
                                                 report["load_trivial"]["throughput_rps"])
    assert "Throughput:" in (tmp_path / "serving.md").read_text()
