"""Fixtures: tiny random models for every task, and the real app served on a free loopback port."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .tiny_models import make_config

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`python app.py` in a subprocess, as a user would start it."""

    def __init__(self, config: Path, log_path: Path, *extra: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False",
               "HF_HUB_OFFLINE": "1", **(env or {})}
        env.pop("GRADIO_SERVER_NAME", None)
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "app.py", "--config", str(config), "--port",
                                      str(self.port), *extra], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_until_served(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"app not served after {timeout}s:\n{self.log()}")

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def call_when_ready(client, text: str, api_name: str, timeout: float = 60):
    """Call an endpoint, retrying while its models are still loading in the background."""
    from gradio_client.exceptions import AppError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.predict(text, api_name=api_name)
        except AppError as exc:
            if "still loading" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory) -> Path:
    """pairs.yaml pointing at tiny teacher/student checkpoints for all three tasks."""
    return make_config(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def app_server(tiny_config, tmp_path_factory):
    server = AppServer(tiny_config, tmp_path_factory.mktemp("logs") / "app.log")
    try:
        server.wait_until_served()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def client(app_server):
    return app_server.client()
