"""Which variant to ship: `python -m demo.evaluate --frontier` on tiny models."""

from __future__ import annotations

import json

import pytest
import yaml

from demo.evaluate import main as evaluate_main
from demo.models import onnx_variants

from .builders import write_sentiment_tsv


@pytest.fixture(scope="module", autouse=True)
def export_cache(tmp_path_factory):
    """One ONNX/OpenVINO cache for the module: each tiny model is exported and its int8 backend chosen once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_variants, "CACHE_ROOT", tmp_path_factory.mktemp("cache"))
        yield


@pytest.fixture(scope="module")
def frontier_run(tiny_config, tmp_path_factory):
    """One CLI run with --frontier and --decision, read by the tests below."""
    tmp_path = tmp_path_factory.mktemp("frontier")
    pairs = yaml.safe_load(tiny_config.read_text())["tasks"]
    data = write_sentiment_tsv(tmp_path / "rows.tsv", 60, 4)
    out = tmp_path / "frontier"
    argv = ["--config", str(tiny_config), "--task", "sentiment", "--file", str(data), "--out", str(out), "--frontier",
            "--student", str(tiny_config.parent / pairs["sentiment"]["student"]["model"]),  # same labels
            "--student", str(tiny_config.parent / pairs["classify"]["student"]["model"]),  # six emotions: other labels
            "--price-per-hour", "0.5", "--margin", "100", "--decision"]
    assert evaluate_main(argv) == 0
    return json.loads((out / "frontier.json").read_text()), out


def test_every_variant_has_its_accuracy_interval_cost_and_difference_to_the_teacher(frontier_run):
    frontier, out = frontier_run
    points = {p["name"]: p for p in frontier["points"]}
    extra = "student:sentiment/student"
    assert {"teacher", "student", "teacher-int8", "student-int8", extra, f"{extra}-int8"} <= set(points)
    for p in points.values():
        assert p["accuracy"]["low"] <= p["accuracy"]["value"] <= p["accuracy"]["high"]
        assert p["cost_per_million"] > 0 and p["p50_ms_batch1"] > 0 and "sentence" in p["vs_teacher"]
        assert "macro_f1" in p and p["params"] > 0
    assert any(p["pareto"] for p in points.values())
    assert "labels" in frontier["not_measured"]["student:classify/student"]  # six emotions: said, the rest go on
    assert frontier["recommended"] in points and frontier["recommendation"].startswith("Ship")
    page = (out / "frontier.html").read_text()
    assert "plotly" in page and frontier["recommendation"].split(":")[0] in page and "not measured" in page
    # every variant not picked says why, measured or not; one speed measure heads the page and draws the chart
    reasons = frontier["reasons"]
    assert set(reasons) == (set(points) | set(frontier["not_measured"])) - {frontier["recommended"]}
    assert all(reason for reason in reasons.values()) and "Why not the others" in page
    speed = frontier["speed_measure"]
    axis = '"xaxis":{"title":{"text":"' + speed.replace("/", "\\u002f") + '"}'  # plotly's JSON escapes "/"
    assert speed in frontier["recommendation"] and axis in page
    assert all(speed in r or "margin" in r or r.startswith("not measured") for r in reasons.values())


@pytest.mark.parametrize("margin", ["-1", "101"])
def test_a_margin_outside_0_to_100_is_one_sentence(tiny_config, tmp_path, capsys, margin):
    data = write_sentiment_tsv(tmp_path / "rows.tsv", 20, 1)
    assert evaluate_main(["--config", str(tiny_config), "--task", "sentiment", "--file", str(data), "--out",
                          str(tmp_path / "o"), "--frontier", "--margin", margin]) == 2
    assert "margin" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_the_recommendation_is_the_cheapest_within_the_margin():
    from demo.measuring.frontier import Point, recommend

    def point(name, low, per_second):
        return Point(name, "pytorch", {"value": 0.9, "low": 0.85, "high": 0.95}, {},
                     {"difference": {"value": low, "low": low, "high": 0.0}}, 10.0, per_second, 1, 1, None)

    points = [point("teacher", 0.0, 10), point("student", -0.005, 20), point("student-int8", -0.03, 80)]
    assert recommend(points, 1.0) == "student"  # int8 loses up to 3 points: outside a 1-point margin
    assert recommend(points, 5.0) == "student-int8"


def test_with_decision_the_page_leads_with_the_recommendation(frontier_run):
    frontier, out = frontier_run
    page = (out / "decision.html").read_text()
    assert page.index(frontier["recommendation"].split(":")[0]) < page.index("<h1>")  # said first, before the question


def test_the_evaluate_tab_offers_the_frontier(client, tmp_path):
    from gradio_client import handle_file

    from .apps import call, call_when_ready

    call_when_ready(client, "warm", "/sentiment")
    data = write_sentiment_tsv(tmp_path / "rows.tsv", 40, 5)
    recommendation, chart, files, _ = call(client, handle_file(str(data)), "sentiment", "sentence", "label", 0, 100,
                                           0.5, api_name="/frontier", timeout=180)
    assert recommendation.startswith("### Ship") and chart is not None
    assert sorted(p.rsplit("/", 1)[-1] for p in files) == ["frontier.html", "frontier.json"]
    with pytest.raises(Exception, match="margin -3: give the points"):
        call(client, handle_file(str(data)), "sentiment", "sentence", "label", 0, -3, 0.5, api_name="/frontier")
