"""The variant table: every variant is built from the table, int8 lands on the backend that measured
fastest here (the choice and both timings said), and a derived variant is compared with its own source."""

from __future__ import annotations

import json

import pytest

from demo.measuring.sweep import BenchSettings, sweep
from demo.models import int8_choice, onnx_variants
from demo.models import variants as table
from demo.models.config import load_config

from .builders import write_sentiment_tsv


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_variants, "CACHE_ROOT", tmp_path / "cache")
    return tmp_path / "cache"


@pytest.mark.slow  # exports and compiles every int8 variant, ~11 s; the benchmark's int8 tests run by default
def test_every_variant_of_the_table_is_measured_against_its_own_source(tiny_config, tmp_path, cache):
    data = write_sentiment_tsv(tmp_path / "eval.tsv", 40, 2)
    names = ["teacher", "student", "teacher-onnx-int8", "teacher-int8", "student-int8"]
    result = sweep(load_config(tiny_config), BenchSettings(tasks=["sentiment"], variants=names, batch_sizes=[2],
                                                           seq_lens=[16], repeats=20, warmup=1, threads=1,
                                                           eval_file=str(data)))
    assert sorted({r.variant for r in result.records}) == sorted(names)
    params = {r.variant: r.params for r in result.records}
    assert params["teacher-int8"] == params["teacher"] and params["student-int8"] == params["student"]
    chosen = [n for n in result.notes if "int8 on " in n and "the fastest here" in n]
    assert len(chosen) == 2 and all("onnxruntime" in n and "openvino" in n for n in chosen)  # both timings said
    quality = {q["variant"]: q for q in result.quality}
    assert quality["teacher-onnx-int8"]["agreement_with_student"] >= 0.9  # against the teacher, its source


def test_the_choice_is_measured_once_per_cpu_and_model_and_picks_the_faster_faithful_backend(tiny_config, cache):
    from demo.models.config import ModelSpec
    from demo.models.loading import load_model

    student = load_model(ModelSpec(load_config(tiny_config).pairs["sentiment"].student.model), "sentiment",
                         __import__("torch").device("cpu"))
    first = int8_choice.fastest(student, 1)
    saved = json.loads((cache / int8_choice.CHOICES_FILE).read_text())
    assert len(saved) == 1 and first.runtime in next(iter(saved.values()))["p50_ms"]
    assert int8_choice.fastest(student, 1).note == first.note  # read back, not measured again
    slow_but_faithful = {"p50_ms": {"onnxruntime": 5.0, "openvino": 2.0},
                         "shift": {"onnxruntime": 0.01, "openvino": 0.3}}
    assert int8_choice.pick(slow_but_faithful) == "onnxruntime"  # a broken quantisation is never chosen
    assert int8_choice.pick({**slow_but_faithful, "shift": {"onnxruntime": 0.01, "openvino": 0.02}}) == "openvino"


def test_a_variant_is_one_row_of_the_table():
    for name, v in table.TABLE.items():
        assert v.name == name and v.source in ("teacher", "student") and v.color.startswith("#")
        assert (v.build is None) == (name in ("teacher", "student"))
    assert set(table.BENCH_VARIANTS) <= set(table.VARIANTS) and table.APP_INT8 in table.TABLE


def test_onnx_runtimes_quantiser_does_not_flood_the_apps_log(tiny_config, tmp_path, caplog):
    """ONNX Runtime's quantiser says, on the root logger at INFO (the app's level), one line per tensor it leaves
    alone: hundreds a model, nothing a user can act on. The app keeps them out of its log; its own lines stay."""
    import logging

    teacher = load_config(tiny_config).pairs["sentiment"].teacher.model
    fp32, int8 = tmp_path / "model.onnx", tmp_path / "model-int8.onnx"
    onnx_variants.export_fp32(teacher, "sentiment", fp32)
    with caplog.at_level(logging.INFO):
        onnx_variants.quantize_int8(fp32, int8)
        logging.getLogger("demo.models").info("our own line")
    assert int8.is_file() and "our own line" in caplog.text
    assert "Quantization parameters for tensor" not in caplog.text, caplog.text[:500]
