"""The real app (`python app.py`) driven through the Gradio API, as a script would use it."""

from __future__ import annotations

import json

import pytest
from gradio_client.exceptions import AppError

from .apps import call, call_when_ready

TEXTS = {"sentiment": "the film was good", "fill_mask": "paris is the [MASK] of france .",
         "classify": "i feel so happy today"}


def summary(result):
    """Every task endpoint (/sentiment, /fill_mask, /classify) answers with the JSON summary alone."""
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize("task", ["sentiment", "fill_mask", "classify"])
def test_each_task_answers_with_both_models(client, task):
    s = summary(call_when_ready(client, TEXTS[task], f"/{task}"))
    assert s["task"] == task and s["text"] == TEXTS[task].strip()
    for variant in ("teacher", "student"):
        part = s[variant]
        assert part["model"].endswith(f"{task}/{variant}")
        assert isinstance(part["prediction"]["label"], str) and part["prediction"]["label"]
        assert 0.0 < part["prediction"]["score"] <= 1.0
        assert part["latency_ms"] > 0
        assert part["device"] == "cpu" and part["dtype"] == "float32"
    assert s["speedup"] == pytest.approx(s["teacher"]["latency_ms"] / s["student"]["latency_ms"], rel=1e-2)
    assert isinstance(s["agree"], bool)
    assert s["agree"] == (s["teacher"]["prediction"]["label"].lower() == s["student"]["prediction"]["label"].lower())


def test_sentiment_labels_come_from_the_config(client):
    # The tiny teacher, like textattack's, names its classes LABEL_0/LABEL_1; the config renames them.
    s = summary(call_when_ready(client, "a great film", "/sentiment"))
    assert s["teacher"]["prediction"]["label"] in {"negative", "positive"}
    assert s["student"]["prediction"]["label"] in {"negative", "positive"}


def test_fill_mask_gives_top5_completion_and_overlap(client):
    result = call_when_ready(client, "the dog ran [MASK] .", "/page_fill_mask")  # the page's own outputs
    s = result[0]
    assert 0.0 <= s["top5_overlap"] <= 1.0
    for variant, label_output, completed_output in (("teacher", 1, 3), ("student", 2, 4)):
        titled = result[label_output]  # the answer, titled with the model that gave it
        assert titled["label"].startswith(f"{variant.capitalize()} · ") and titled["label"].endswith(variant)
        label = titled["value"]
        assert len(label["confidences"]) == 5
        top_token = s[variant]["prediction"]["label"]
        assert label["label"] == top_token
        assert result[completed_output] == s[variant]["completed"] == f"the dog ran {top_token} ."


def test_angle_bracket_mask_is_accepted(client):
    s = summary(call_when_ready(client, "the cat is <mask> .", "/fill_mask"))
    assert s["text"] == "the cat is [MASK] ."


@pytest.mark.parametrize("task", ["sentiment", "fill_mask", "classify"])
@pytest.mark.parametrize("text", ["", "   \n\t  "])
def test_empty_text_is_refused_clearly(client, task, text):
    with pytest.raises(AppError, match="The text is empty"):
        call_when_ready(client, text, f"/{task}")


@pytest.mark.parametrize("text, found", [("no mask here", "no mask"), ("[MASK] and [mask] and <mask>", "3 masks")])
def test_fill_mask_needs_exactly_one_mask(client, text, found):
    with pytest.raises(AppError, match=rf"exactly one mask and the text has {found}: write \[MASK\]"):
        call_when_ready(client, text, "/fill_mask")


def test_long_text_is_truncated_and_said(client):
    s = summary(call_when_ready(client, "the film was good . " * 300, "/sentiment"))
    assert any("longer than the 512 tokens the teacher reads" in n for n in s["notices"])
    assert any("longer than the 512 tokens the student reads" in n for n in s["notices"])


def test_mask_beyond_the_limit_is_explained(client):
    with pytest.raises(AppError, match=r"beyond the first 512 tokens"):
        call_when_ready(client, "the film was good . " * 300 + "[MASK]", "/fill_mask")


def test_control_characters_are_removed_and_said(client):
    s = summary(call_when_ready(client, "the film\x00 was\x1b good\x07", "/classify"))
    assert s["text"] == "the film was good"
    assert "Removed 3 control characters from the text." in s["notices"]


def test_unrepresentable_characters_report_the_unk_share(client):
    s = summary(call_when_ready(client, "你好世界 😀 ∑∫", "/sentiment"))
    assert any("[UNK]" in n and "%" in n for n in s["notices"])


def test_app_keeps_serving_after_bad_input(client):
    for bad in ("", "no mask"):
        with pytest.raises(AppError):
            call(client, bad, api_name="/fill_mask")
    assert summary(call_when_ready(client, "[MASK] is good", "/fill_mask"))["task"] == "fill_mask"


def test_order_alternates_between_requests(client):
    # The same endpoint twice: the verdict says which model ran first, and it must alternate.
    firsts = []
    for _ in range(2):
        verdict = call_when_ready(client, "i love this", "/page_classify")[3]
        firsts.append("teacher ran first" in verdict)
    assert firsts[0] != firsts[1]


def test_latency_history_grows_within_a_session(app_server):
    # One client = one session: the chart's subtitle counts this session's requests.
    client = app_server.client()
    for n in (1, 2, 3):
        result = call_when_ready(client, "a good day", "/page_sentiment")
        figure = json.loads(result[4]["plot"])
        assert figure["layout"]["title"]["text"].split("<br>")[1].startswith(f"<sup>{n} requests · p50 teacher")
        per_request = {trace["name"]: trace["y"] for trace in figure["data"] if trace["name"].endswith("(ms)")}
        assert set(per_request) == {"teacher (ms)", "student (ms)"}  # one point per request, for each model
        assert all(len(ys) == n and all(y > 0 for y in ys) for ys in per_request.values())
