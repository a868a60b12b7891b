"""The app as tests run it: `python app.py` in a subprocess (AppServer) or app.serve() in this process
(InProcessApp), and API calls that never hang the suite."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from .builders import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the app, started as a user starts it ----------------------------------------------------------
class AppServer:
    """`python app.py` in a subprocess, as a user would start it."""

    def __init__(self, config: Path, log_path: Path, *extra: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False",
               "HF_HUB_OFFLINE": "1", **(env or {})}
        env.pop("GRADIO_SERVER_NAME", None)
        self._log = open(log_path, "w")  # noqa: SIM115 - the app's log for as long as it runs; closed by stop()
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


CALL_TIMEOUT = 60.0  # seconds one API call of a test may take, even on the slowest machine of this kind


def call(client, *args, api_name: str, timeout: float = CALL_TIMEOUT):
    """client.predict with a bound: gradio_client waits on its event stream without a timeout, so a call
    the app never answers would hang the suite; here it fails and names the endpoint."""
    job = client.submit(*args, api_name=api_name)
    try:
        return job.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        job.cancel()
        raise TimeoutError(f"{api_name} gave no answer within {timeout:.0f} s; see the app's log") from None


def call_when_ready(client, text: str, api_name: str, timeout: float = 60):
    """Call an endpoint, retrying while its models are still loading in the background."""
    from gradio_client.exceptions import AppError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(client, text, api_name=api_name)
        except AppError as exc:
            if "still loading" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)

def job_status(client, key: str, states=("done", "failed", "cancelled"), timeout: float = 150) -> dict:
    """/distill_status polled until the job reaches one of states (or timeout passes): its last status."""
    deadline = time.monotonic() + timeout
    while True:
        status = call(client, key, api_name="/distill_status")
        if status["state"] in states or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


class InProcessApp:
    """app.py's serve() in this process: the same flags, config, page and API as `python app.py`,
    without a new interpreter (about 10 s of imports on these machines). For tests of the page and its
    API; tests of the process itself (signals, binding, memory) start an AppServer."""

    def __init__(self, config: Path, *flags: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._records: list = []
        self._handler = logging.Handler(level=logging.WARNING)
        self._handler.emit = self._records.append
        logging.getLogger().addHandler(self._handler)
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})  # read while the page is built (SPACE_ID), then put back
        try:
            import app

            self.served = app.serve(["--config", str(config), "--port", str(self.port), *flags])
        except app.ConfigError:
            logging.getLogger().removeHandler(self._handler)
            raise
        finally:
            for key, value in saved.items():
                os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        self.page, self.registry, self.training = self.served.page, self.served.registry, self.served.training

    def wait_until_loaded(self, timeout: float = 120) -> InProcessApp:
        """Until every model has loaded or failed (the page answers before: it says what is loading)."""
        deadline = time.monotonic() + timeout
        while not self.registry.all_settled():
            if time.monotonic() > deadline:
                raise TimeoutError(f"models still loading after {timeout:.0f} s")
            time.sleep(0.1)
        return self

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False)

    def log(self) -> str:
        """The warnings and errors logged while it served, tracebacks included."""
        formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        return "\n".join(formatter.format(r) for r in self._records)

    def stop(self) -> None:
        """Close the page once its models have settled: a loader still building a model when the next test
        builds one would race it (transformers builds on a meta device that every thread sees)."""
        try:
            self.wait_until_loaded()
        finally:
            self.served.close()
        logging.getLogger().removeHandler(self._handler)


def served(config: Path, *flags: str):
    """A module fixture's body: the app on config with flags, loaded, stopped after the module."""
    server = InProcessApp(config, *flags).wait_until_loaded()
    try:
        yield server
    finally:
        server.stop()
