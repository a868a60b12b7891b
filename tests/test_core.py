"""The package's pure pieces: input checks, predictions, timing and size, charts, comparisons."""

from __future__ import annotations

import pytest
import torch

from demo.core.measure import (
    LatencyStats,
    SizeReport,
    count_parameters,
    memory_bytes,
    percentile,
    size_of,
)
from demo.measuring.charts import latency_chart, running_percentiles, size_chart
from demo.models.compare import compare
from demo.models.config import ModelSpec
from demo.models.loading import load_model
from demo.models.tasks import InputError, encode, predict, prepare_text

from .builders import make_pair

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("core")
    out = {}
    for task in ("classify", "fill_mask"):
        dirs = make_pair(task, root)
        out[task] = {variant: load_model(ModelSpec(str(path)), task, CPU) for variant, path in dirs.items()}
    return out


@pytest.mark.parametrize("text, expected", [
    ("  hello\tworld\n", "hello world"),
    ("zero\u200bwidth", "zero\u200bwidth"),  # format characters are the tokenizer's business, not removed
])
def test_prepare_text_normalises_whitespace(text, expected):
    assert prepare_text("classify", text).text == expected


@pytest.mark.parametrize("text", [None, "", " \n\t ", "\x00\x01"])
def test_prepare_text_refuses_empty(text):
    with pytest.raises(InputError, match="The text is empty"):
        prepare_text("sentiment", text)


def test_prepare_text_normalises_mask_spellings():
    assert prepare_text("fill_mask", "a <MASK> day").text == "a [MASK] day"
    assert prepare_text("fill_mask", "a [mask] day").text == "a [MASK] day"


def test_teacher_gets_token_type_ids_and_distilbert_student_does_not(models):
    teacher_inputs, _ = encode(models["classify"]["teacher"], "i feel happy")
    student_inputs, _ = encode(models["classify"]["student"], "i feel happy")
    assert "token_type_ids" in teacher_inputs
    assert set(student_inputs) == {"input_ids", "attention_mask"}


def test_truncation_keeps_the_closing_special_token(models):
    loaded = models["classify"]["teacher"]
    inputs, truncated = encode(loaded, "happy " * 1000)
    ids = inputs["input_ids"][0]
    assert truncated and len(ids) == 512 and int(ids[-1]) == loaded.tokenizer.sep_token_id


def test_classification_probabilities_are_a_distribution(models):
    pred = predict(models["classify"]["teacher"], "i feel happy")
    assert len(pred.top) == 5 and pred.top == sorted(pred.top, key=lambda x: -x[1])
    assert all(lab in {"sadness", "joy", "love", "anger", "fear", "surprise"} for lab, _ in pred.top)
    logits = models["classify"]["teacher"].model(**encode(models["classify"]["teacher"], "i feel happy")[0]).logits
    assert pred.score == pytest.approx(logits.softmax(-1).max().item(), rel=1e-5)


def test_fill_mask_never_suggests_special_tokens(models):
    loaded = models["fill_mask"]["teacher"]
    pred = predict(loaded, "the [MASK] is good")
    specials = set(loaded.tokenizer.all_special_tokens)
    assert len(pred.top) == 5 and not specials & {tok for tok, _ in pred.top}
    assert pred.completed == f"the {pred.label} is good"


def test_unk_share_counts_unknown_characters(models):
    assert predict(models["classify"]["teacher"], "你好 世界").unk_share == 1.0
    assert predict(models["classify"]["teacher"], "i feel happy").unk_share == 0.0


def test_percentiles_match_numpy_definition():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 50) == 3.0 and percentile(values, 0) == 1.0 and percentile(values, 100) == 5.0
    assert percentile(values, 95) == pytest.approx(4.8)
    stats = LatencyStats.of(values)
    assert (stats.n, stats.p50_ms, stats.min_ms, stats.mean_ms) == (5, 3.0, 1.0, 3.0)


def test_size_counts_parameters_disk_and_memory(models):
    loaded = models["classify"]["student"]
    size = size_of(loaded.model, loaded.weight_files)
    assert size.params == sum(p.numel() for p in loaded.model.parameters()) == count_parameters(loaded.model)
    assert size.memory_bytes == memory_bytes(loaded.model) >= size.params * 4
    assert size.disk_bytes == loaded.weight_files[0].stat().st_size > size.params * 4


def test_compare_orders_the_models_as_asked(models, monkeypatch):
    import demo.models.compare as cmp

    calls = []
    real = cmp.run_variant
    monkeypatch.setattr(cmp, "run_variant",
                        lambda variant, loaded, text: calls.append(variant) or real(variant, loaded, text))
    pair = models["classify"]
    result = compare("classify", "i feel happy", pair["teacher"], pair["student"], teacher_first=False)
    assert calls == ["student", "teacher"] and not result.teacher_first
    assert result.speedup == pytest.approx(result.teacher.latency_ms / result.student.latency_ms)
    assert result.summary()["agree"] == (result.teacher.prediction.label == result.student.prediction.label)


def test_latency_chart_has_both_models_and_running_percentiles():
    history = [{"request": i + 1, "teacher_ms": t, "student_ms": s}
               for i, (t, s) in enumerate([(10, 5), (12, 6), (30, 7)])]
    fig = latency_chart(history)
    names = [trace.name for trace in fig.data]
    assert names == ["teacher (ms)", "teacher p50", "teacher p95", "student (ms)", "student p50", "student p95"]
    assert list(fig.data[1].y) == running_percentiles([10, 12, 30], 50) == [10, 11, 12]
    assert "3 requests" in fig.layout.title.text
    assert len(latency_chart([]).data) == 0


def test_size_chart_states_the_ratios():
    fig = size_chart({"teacher": SizeReport(100, 400, 400), "student": SizeReport(60, 200, 240)})
    titles = [a.text for a in fig.layout.annotations]
    assert "student / teacher = 0.60" in titles[0] and "0.50" in titles[1] and "0.60" in titles[2]
    assert [list(bar.y) for bar in fig.data] == [[100, 60], [400, 200], [400, 240]]


def test_progress_without_a_terminal_prints_whole_lines_per_tenth():
    import io

    from demo.core.progress import ProgressLine

    log = io.StringIO()
    with ProgressLine("evaluated", unit="examples", stream=log, tty=False, min_seconds=0) as progress:
        for done in range(101):
            progress(done, 100, "ok")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 10  # 10%, 20%, ... 100%
    assert lines[0] == "evaluated: 10/100 examples (10%), ok" and lines[-1].startswith("evaluated: 100/100")
    quiet = io.StringIO()
    with ProgressLine("quick", stream=quiet, tty=False) as progress:  # done long before the first interval
        for done in range(11):
            progress(done, 10)
    assert quiet.getvalue() == ""


def test_running_percentiles_equal_the_percentile_of_every_prefix():
    import random

    values = [random.Random(7).uniform(1, 100) for _ in range(200)]
    for q in (50, 95):
        assert running_percentiles(values, q) == pytest.approx([percentile(values[: i + 1], q) for i in range(200)])


def test_the_latency_chart_is_a_valid_plotly_figure_built_fast():
    import time

    import plotly.graph_objects as go

    history = [{"request": i + 1, "teacher_ms": 10.0 + i % 5, "student_ms": 4.0 + i % 3} for i in range(500)]
    start = time.perf_counter()
    fig = latency_chart(history)
    assert time.perf_counter() - start < 1.0  # a session's longest history, redrawn on every request
    again = go.Figure(fig.to_plotly_json())  # what plotly itself validates must accept it
    assert [t.name for t in again.data] == [t.name for t in fig.data] and again.layout.xaxis.dtick == 50
