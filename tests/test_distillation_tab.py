"""The Distillation tab, read from the page's own configuration as the browser gets it."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
import yaml

from demo.core.formatting import md_escape, without_paths
from demo.distill.cli import main as distill_main
from demo.measuring.bought import bought_sentence
from demo.measuring.charts import (
    recipe_comparison_chart,
    retention_chart,
    run_size_speed_chart,
    training_curves,
)
from demo.serving.evidence import REFERENCE_RUN, Evidence, EvidenceError

from .apps import InProcessApp
from .builders import ROOT, write_sentiment_tsv, write_teacher


def page_components(url: str) -> dict[str, dict]:
    """elem_id -> component props, from the config the page itself is built from."""
    with urllib.request.urlopen(url + "config", timeout=30) as response:
        config = json.load(response)
    return {c["props"]["elem_id"]: c["props"] for c in config["components"] if c.get("props", {}).get("elem_id")}


def links(markdown: str) -> list[str]:
    return re.findall(r"\]\((https?://[^)]+)\)", markdown)


def test_default_config_shows_the_script_and_how_to_make_a_run_without_a_dead_link(app_server):
    parts = page_components(app_server.url)
    script = parts["distill-script"]["value"]
    assert "demo/distill" in script and "python -m demo.distill distill --help" in script
    assert "http" not in script  # no Space, no Hub repo: a path and a command, never a made-up link
    reference = parts["distill-reference"]["value"]  # none configured: the repository's reference run, said so
    assert "shown is the project's reference run" in reference and "docs/results.md" in reference
    assert "python -m demo.distill distill" in parts["distill-recipe"]["value"]  # its command, in the recipe
    assert "Distil a student" in reference
    assert {"distill-recipe", "distill-curves", "distill-recipes", "distill-card"} <= set(parts)
    bought = bought_sentence(json.loads((REFERENCE_RUN / "metrics.json").read_text()))  # the committed run's
    assert parts["distill-bought"]["value"] == f"### {md_escape(bought[0].upper() + bought[1:])}."
    assert bought.startswith("distilling bought +")


def test_without_the_reference_files_the_tab_says_how_to_make_a_run(monkeypatch, tmp_path):
    from demo.serving import evidence

    monkeypatch.setattr(evidence, "REFERENCE_RUN", tmp_path / "none")
    shown, note = evidence.load_evidence(None)
    assert shown is None and "No distillation run is configured" in note and "distill --teacher" in note


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tab-run")
    train, validation = write_sentiment_tsv(root / "train.tsv", 96, 0), write_sentiment_tsv(root / "val.tsv", 40, 1)
    other = write_sentiment_tsv(root / "other.tsv", 30, 2)
    out = root / "student"
    assert distill_main(["distill", "--augment", "0",
                         "--teacher", str(write_teacher(root / "teacher")), "--student-layers", "1",
                         "--train-file", str(train), "--validation-file", str(validation), "--epochs", "2",
                         "--min-steps", "0", "--batch-size", "16", "--logging-steps", "2", "--baselines",
                         "--eval-file", f"other={other}", "--output-dir", str(out)]) == 0
    return out


def test_a_run_is_shown_with_its_recipe_and_evidence_and_the_spaces_own_links(tiny_config, tiny_run, tmp_path):
    raw = yaml.safe_load(tiny_config.read_text())
    raw["distillation"] = {"output_dir": str(tiny_run)}
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump(raw))
    server = InProcessApp(config, env={"SPACE_ID": "someone/some-space"})
    try:
        parts = page_components(server.url)
    finally:
        server.stop()
    script_links = links(parts["distill-script"]["value"])
    space = "https://huggingface.co/spaces/someone/some-space/blob/main/"
    assert script_links and all(u.startswith(space + "demo/distill/") for u in script_links)
    missing = [u for u in script_links if not (ROOT / u.removeprefix(space)).is_file()]
    assert not missing, f"links to files the Space does not have: {missing}"
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    recipe = parts["distill-recipe"]["value"]
    assert without_paths(metrics["command"]) in recipe and "96 labelled" in recipe  # as a visitor may read it
    assert str(tmp_path) not in recipe
    for elem_id in ("distill-curves", "distill-recipes", "distill-retention", "distill-size"):
        figure = json.loads(parts[elem_id]["value"]["plot"])
        assert figure["data"], elem_id
    recipes = json.loads(parts["distill-recipes"]["value"]["plot"])["data"][0]
    assert recipes["y"][:2] == ["teacher", "distilled student"] and len(recipes["y"]) == 2 + len(metrics["baselines"])
    assert recipes["x"][1] == pytest.approx(metrics["student_accuracy"])
    retention = json.loads(parts["distill-retention"]["value"]["plot"])["data"][0]
    assert retention["x"] == ["validation (in domain)", "other"]
    assert "distill-card" in parts


def test_charts_are_drawn_from_the_runs_own_figures(tiny_run):
    evidence = Evidence.from_dir(tiny_run)
    curves = training_curves(evidence.history)
    accuracy = next(t for t in curves.data if t.name == "validation accuracy")
    assert list(accuracy.y) == [r["validation_accuracy"] for r in evidence.metrics["history"]]
    assert {t.name for t in curves.data} >= {"total", "kl", "ce"}
    assert retention_chart(evidence.metrics).data[0].y[0] == pytest.approx(evidence.metrics["retention"])
    size = run_size_speed_chart(evidence.metrics)
    assert list(size.data[0].y) == [evidence.metrics["teacher_params"], evidence.metrics["student_params"]]
    assert recipe_comparison_chart({**evidence.metrics, "baselines": []}).layout.title.text.endswith(
        "(run with --baselines to compare recipes)")


def test_a_directory_that_is_not_a_run_is_explained(tmp_path):
    with pytest.raises(EvidenceError, match=r"holds no metrics\.json"):
        Evidence.from_dir(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"accuracy": 0.9}))
    with pytest.raises(EvidenceError, match="finetune output shows no student"):
        Evidence.from_dir(tmp_path)


@pytest.mark.parametrize("value, low, high, p, says", [
    (0.032, 0.012, 0.052, 0.004, "distilling bought +3.2 points [+1.2, +5.2] over training this student on your "
                                 "labels alone (exact McNemar p = 0.004)"),
    (-0.03, -0.05, -0.01, 0.01, "distilling cost -3.0 points"),
    (0.01, -0.004, 0.025, 0.2, "distilling bought no detectable difference over training this student on your labels "
                               "alone (+1.0 points [-0.4, +2.5], exact McNemar p = 0.2)"),
])
def test_what_distillation_bought_is_one_sentence(value, low, high, p, says):
    from demo.measuring.bought import bought_sentence

    metrics = {"teacher_accuracy": 0.86, "student_accuracy": 0.84, "baselines": [
        {"name": "layer dropping alone (no training)", "accuracy": 0.7},
        {"name": "hard labels alone (no teacher)", "accuracy": 0.82, "paired": {
            "n": 872, "mcnemar_p": p, "difference": {"value": value, "low": low, "high": high}}}]}
    sentence = bought_sentence(metrics)
    assert sentence.startswith(says) and "the teacher: 0.8600" in sentence
    assert bought_sentence({"baselines": []}) is None  # a run without --baselines says nothing
