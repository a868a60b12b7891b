"""Config validation and model loading, including every way a model can fail to load."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from demo.models.config import ConfigError, ModelSpec, load_config, parse_config
from demo.models.loading import LoadError, ModelCache, load_model, weight_files
from demo.models.registry import PairRegistry, TaskUnavailable

from .apps import InProcessApp, call_when_ready
from .builders import ROOT, make_pair

CPU = torch.device("cpu")


def test_shipped_defaults_are_the_documented_pairs():
    config = load_config()
    assert config.tasks == ["sentiment", "fill_mask", "classify"]
    assert config.pairs["sentiment"].teacher == ModelSpec("textattack/bert-base-uncased-SST-2",
                                                          labels=("negative", "positive"))
    assert config.pairs["fill_mask"].student.model == "distilbert/distilbert-base-uncased"
    assert config.pairs["classify"].teacher.model == "bhadresh-savani/bert-base-uncased-emotion"


def test_a_task_left_out_is_not_configured():
    config = parse_config({"tasks": {"classify": {"teacher": "a/b", "student": "c/d"}}})
    assert config.tasks == ["classify"] and config.device == "auto"


@pytest.mark.parametrize("raw, message", [
    ({"device": "tpu", "tasks": {"classify": {"teacher": "a", "student": "b"}}}, "device 'tpu' is not one of"),
    ({"tasks": {"translate": {"teacher": "a", "student": "b"}}}, "unknown task 'translate'"),
    ({"tasks": {"classify": {"teacher": "a"}}}, "needs exactly a 'teacher' and a 'student'"),
    ({"tasks": {"classify": {"teacher": {"model": ""}, "student": "b"}}}, "'model' must be a Hub id"),
    ({"tasks": {"classify": {"teacher": {"model": "a", "labels": "pos"}, "student": "b"}}}, "'labels' must be"),
    ({"tasks": {"classify": {"teacher": {"model": "a", "lables": ["x"]}, "student": "b"}}}, "unknown key"),
    ({"tasks": {}}, "'tasks' must map at least one"),
    (["not", "a", "mapping"], "must be a mapping"),
])
def test_bad_config_is_rejected_with_a_fix(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


@pytest.mark.slow  # app processes, ~9 s; the config's checks themselves are tested in-process above
def test_bad_config_file_stops_the_app_with_one_line(tmp_path):
    bad = tmp_path / "pairs.yaml"
    bad.write_text("device: gpu\ntasks: {classify: {teacher: a, student: b}}\n")
    proc = subprocess.run([sys.executable, "app.py", "--config", str(bad)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "device 'gpu' is not one of auto, cpu, cuda, mps" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_config_file_is_explained(tmp_path):
    with pytest.raises(ConfigError, match="not found; pass --config"):
        load_config(tmp_path / "nope.yaml")


def test_relative_model_directories_resolve_against_the_config(tmp_path):
    make_pair("classify", tmp_path)
    path = tmp_path / "pairs.yaml"
    path.write_text(yaml.safe_dump({"tasks": {"classify": {"teacher": "classify/teacher",
                                                           "student": "./classify/student"}}}))
    config = load_config(path)
    assert Path(config.pairs["classify"].teacher.model) == (tmp_path / "classify/teacher").resolve()


@pytest.fixture(scope="module")
def pair_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    return {task: make_pair(task, root) for task in ("sentiment", "fill_mask")}


def test_config_labels_rename_classes(pair_dirs):
    spec = ModelSpec(str(pair_dirs["sentiment"]["teacher"]), labels=("negative", "positive"))
    loaded = load_model(spec, "sentiment", CPU)
    assert loaded.id2label == {0: "negative", 1: "positive"}
    assert load_model(ModelSpec(spec.model), "sentiment", CPU).id2label == {0: "LABEL_0", 1: "LABEL_1"}


def test_label_count_mismatch_is_a_load_error(pair_dirs):
    spec = ModelSpec(str(pair_dirs["sentiment"]["teacher"]), labels=("a", "b", "c"))
    with pytest.raises(LoadError, match="gives 3 labels but the model has 2 classes"):
        load_model(spec, "sentiment", CPU)


def test_models_load_once_per_process(pair_dirs):
    cache = ModelCache()
    spec = ModelSpec(str(pair_dirs["fill_mask"]["student"]))
    first = cache.get(spec, "fill_mask", CPU, torch.float32)
    assert cache.get(spec, "fill_mask", CPU, torch.float32) is first


def test_safetensors_are_preferred_over_bin(pair_dirs, tmp_path):
    import shutil

    target = tmp_path / "both"
    shutil.copytree(pair_dirs["sentiment"]["student"], target)
    torch.save({}, target / "pytorch_model.bin")  # an empty (would-be-broken) .bin beside the safetensors
    assert [p.name for p in weight_files(ModelSpec(str(target)))] == ["model.safetensors"]
    load_model(ModelSpec(str(target)), "sentiment", CPU)  # loads from safetensors, ignores the .bin


def broken_dirs(good: Path, root: Path) -> dict[str, Path]:
    import shutil

    out = {}
    out["missing"] = root / "does-not-exist"
    out["no weights"] = root / "no-weights"
    shutil.copytree(good, out["no weights"])
    (out["no weights"] / "model.safetensors").unlink()
    out["truncated"] = root / "truncated"
    shutil.copytree(good, out["truncated"])
    data = (out["truncated"] / "model.safetensors").read_bytes()
    (out["truncated"] / "model.safetensors").write_bytes(data[: len(data) // 3])
    out["corrupt"] = root / "corrupt"
    shutil.copytree(good, out["corrupt"])
    (out["corrupt"] / "model.safetensors").write_bytes(b"\xff" * 64)
    out["no config"] = root / "no-config"
    shutil.copytree(good, out["no config"])
    (out["no config"] / "config.json").unlink()
    return out


@pytest.mark.parametrize("case, reason", [
    ("missing", "this directory does not exist"),
    ("no weights", "not a complete saved model"),
    ("truncated", "truncated or corrupt"),
    ("corrupt", "truncated or corrupt"),
    ("no config", "not a complete saved model"),
])
def test_broken_model_directories_get_one_sentence(pair_dirs, tmp_path, case, reason):
    path = broken_dirs(pair_dirs["sentiment"]["student"], tmp_path)[case]
    with pytest.raises(LoadError) as info:
        load_model(ModelSpec(str(path)), "sentiment", CPU)
    assert reason in info.value.reason
    assert info.value.fix and "\n" not in str(info.value)


def test_unreachable_hub_says_how_to_work_offline():
    start = time.monotonic()
    with pytest.raises(LoadError) as info:
        load_model(ModelSpec("some-org/not-in-the-cache"), "classify", CPU, local_files_only=True)
    assert "cannot be reached" in info.value.reason and "not in the local cache" in info.value.reason
    assert "HF_HUB_OFFLINE=1" in info.value.fix and "local directory" in info.value.fix
    assert time.monotonic() - start < 30


def test_a_failed_task_does_not_stop_the_others(pair_dirs, tmp_path):
    config = parse_config({"device": "cpu", "tasks": {
        "sentiment": {"teacher": str(tmp_path / "gone"), "student": str(pair_dirs["sentiment"]["student"])},
        "fill_mask": {"teacher": str(pair_dirs["fill_mask"]["teacher"]),
                      "student": str(pair_dirs["fill_mask"]["student"])}}})
    registry = PairRegistry(config)
    registry.load_all()
    assert registry.all_settled()
    with pytest.raises(TaskUnavailable, match=r"The teacher \(.*gone\) failed to load: this directory does not exist"):
        registry.run("sentiment", "good")
    assert registry.run("fill_mask", "a [MASK] day").task == "fill_mask"


def test_page_and_api_report_a_failed_model_and_keep_the_rest(pair_dirs, tmp_path):
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump({"device": "cpu", "tasks": {
        "sentiment": {"teacher": str(tmp_path / "missing-teacher"), "student": str(pair_dirs["sentiment"]["student"])},
        "fill_mask": {"teacher": str(pair_dirs["fill_mask"]["teacher"]),
                      "student": str(pair_dirs["fill_mask"]["student"])}}}))
    server = InProcessApp(config)
    try:
        client = server.client()
        assert call_when_ready(client, "a [MASK] day", "/fill_mask")["task"] == "fill_mask"
        from gradio_client.exceptions import AppError

        with pytest.raises(AppError, match="missing-teacher\\) failed to load: this directory does not exist"):
            call_when_ready(client, "good", "/sentiment")
        assert "/classify" not in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    finally:
        server.stop()
    assert "Traceback" not in server.log()


def test_without_network_every_tab_says_why_within_seconds(monkeypatch):
    """The shipped Hub ids on a machine where the Hub cannot be reached: one quick probe, then the
    local cache only, instead of ~25 s of retries before the first tab can say what is wrong."""
    from huggingface_hub import constants, try_to_load_from_cache

    config = load_config()  # the shipped defaults: Hub ids
    specs = [config.pairs[t].spec(v) for t in config.tasks for v in ("teacher", "student")]
    if any(isinstance(try_to_load_from_cache(s.model, "config.json"), str) for s in specs):
        pytest.skip("a default model is in this machine's Hugging Face cache")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")  # a name that never resolves
    registry = PairRegistry(replace(config, device="cpu"))
    start = time.monotonic()
    registry.load_all()
    assert time.monotonic() - start < 5
    for task in config.tasks:
        for status in registry.status(task)[:2]:  # teacher and student (the ONNX column follows the student)
            assert status.state == "failed" and "cannot be reached" in status.reason, status
