"""What the app costs on top of its models, against a trivial Gradio app.

In one run, on the same machine: the app's round trip through gradio_client, the models' own time
(the latency the app reports for each model), and the round trip of a trivial Gradio app of the
same shape (one text in, a JSON summary out, the same queue settings); then N concurrent API users
on each. App and trivial requests alternate, so both meet the same machine. -> serving.json, serving.md
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from demo.core.measure import percentile

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["the film was good", "a dull and bad plot", "i feel so happy today", "they hate this city"]
MASKED = ["paris is the [MASK] of france", "i love my [MASK] ."]  # fill-mask needs one mask


def trivial_app(port: int) -> None:
    """The floor: the same queue settings as app.py, a handler that does nothing but answer."""
    import gradio as gr

    def answer(text: str) -> dict:
        return {"task": "trivial", "text": text, "length": len(text)}

    with gr.Blocks() as page:
        box, out = gr.Textbox(), gr.JSON()
        gr.Button().click(answer, inputs=box, outputs=out, api_name="trivial")
    page.queue(default_concurrency_limit=1, max_size=64)
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    while True:
        time.sleep(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(argv: list[str], port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{' '.join(argv)} exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{' '.join(argv)} was not served within 120 s")


@dataclass
class LoadFigures:
    users: int
    requests: int
    answered: int
    errors: int
    wall_s: float
    throughput_rps: float
    p50_ms: float
    p95_ms: float


@dataclass
class ServingReport:
    task: str
    requests: int
    app_round_trip_p50_ms: float
    models_p50_ms: float
    trivial_round_trip_p50_ms: float
    app_overhead_p50_ms: float  # app round trip - models' own time, per request (p50 of the differences)
    trivial_overhead_p50_ms: float  # the trivial app's round trip: all of it is overhead
    load_app: LoadFigures | None = None
    load_trivial: LoadFigures | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def load_ratio(self) -> float | None:
        if self.load_app is None or self.load_trivial is None or not self.load_trivial.throughput_rps:
            return None
        return self.load_app.throughput_rps / self.load_trivial.throughput_rps

    def to_dict(self) -> dict:
        return {**asdict(self), "load_ratio": self.load_ratio}

    def markdown(self) -> str:
        lines = ["# Serving: the app against a trivial Gradio app", "",
                 f"Task `{self.task}`, {self.requests} sequential requests each, alternating app and trivial app.", "",
                 "| | p50 ms |", "| --- | --- |",
                 f"| app round trip | {self.app_round_trip_p50_ms:.1f} |",
                 f"| the models' own time (as the app reports it) | {self.models_p50_ms:.1f} |",
                 f"| app overhead (round trip - models) | {self.app_overhead_p50_ms:.1f} |",
                 f"| trivial app round trip (all overhead) | {self.trivial_round_trip_p50_ms:.1f} |",
                 "", f"**The app's own cost per request: "
                 f"{self.app_overhead_p50_ms - self.trivial_overhead_p50_ms:+.1f} ms** over the trivial app's."]
        if self.load_app and self.load_trivial:
            lines += ["", "| concurrent load | users | requests | answered | errors | req/s | p50 ms | p95 ms |",
                      "| --- " * 8 + "|"]
            for name, f in (("app", self.load_app), ("trivial app", self.load_trivial)):
                lines.append(f"| {name} | {f.users} | {f.requests} | {f.answered} | {f.errors} | "
                             f"{f.throughput_rps:.1f} | {f.p50_ms:.0f} | {f.p95_ms:.0f} |")
            lines += ["", f"**Throughput: {self.load_ratio:.2f} × the trivial app's.**"]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join([*lines, ""])


def _text(api_name: str, i: int) -> str:
    return MASKED[i % len(MASKED)] if api_name == "/fill_mask" else TEXTS[i % len(TEXTS)]


def _load(url: str, api_names: list[str], users: int, per_user: int) -> LoadFigures:
    """users API clients at once, each sending per_user requests, cycling through the endpoints."""
    from gradio_client import Client

    latencies, errors, lock = [], [], threading.Lock()

    def user(n: int) -> None:
        client = Client(url, verbose=False)
        for i in range(per_user):
            start = time.perf_counter()
            try:
                api_name = api_names[(n + i) % len(api_names)]
                client.predict(_text(api_name, n + i), api_name=api_name)
                with lock:
                    latencies.append((time.perf_counter() - start) * 1000)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(repr(exc))

    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return LoadFigures(users, users * per_user, len(latencies), len(errors), round(wall, 2),
                       round(len(latencies) / wall, 2), round(percentile(latencies, 50), 1),
                       round(percentile(latencies, 95), 1))


def _wait_and_warm(app_client, trivial_client, task: str, load_tasks: list[str], timeout: float = 120) -> None:
    """Models load in the background: wait until each task answers, then warm both servers' paths."""
    deadline = time.monotonic() + timeout
    for name in dict.fromkeys([task, *load_tasks]):
        while True:
            try:
                app_client.predict(_text(f"/{name}", 0), api_name=f"/{name}")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    for _ in range(5):
        app_client.predict(_text(f"/{task}", 0), api_name=f"/page_{task}")
        trivial_client.predict("warm up", api_name="/trivial")


def measure(config: str | None, task: str, requests: int, users: int, per_user: int, workdir: Path,
            load_tasks: list[str] | None = None) -> ServingReport:
    from gradio_client import Client

    app_port, trivial_port = _free_port(), _free_port()
    app_args = ["app.py", "--port", str(app_port)] + (["--config", config] if config else [])
    app = _serve(app_args, app_port, workdir / "app.log")
    trivial = _serve(["-m", "demo.bench_serving", "--serve-trivial", str(trivial_port)], trivial_port,
                     workdir / "trivial.log")
    try:
        app_client = Client(f"http://127.0.0.1:{app_port}/", verbose=False)
        trivial_client = Client(f"http://127.0.0.1:{trivial_port}/", verbose=False)
        load_tasks = load_tasks or [task]
        _wait_and_warm(app_client, trivial_client, task, load_tasks)
        app_rtt, models, trivial_rtt, overhead = [], [], [], []
        for i in range(requests):
            text = _text(f"/{task}", i)
            start = time.perf_counter()
            # The page's event (answers, latency chart, history), as before the clean /{task} endpoint existed:
            # the path a visitor's click takes, and comparable with earlier reports.
            summary = app_client.predict(text, api_name=f"/page_{task}")[0]
            rtt = (time.perf_counter() - start) * 1000
            model_ms = sum(v["latency_ms"] for k, v in summary.items() if isinstance(v, dict) and "latency_ms" in v)
            app_rtt.append(rtt)
            models.append(model_ms)
            overhead.append(rtt - model_ms)
            start = time.perf_counter()
            trivial_client.predict(text, api_name="/trivial")
            trivial_rtt.append((time.perf_counter() - start) * 1000)
        report = ServingReport(task=task, requests=requests, app_round_trip_p50_ms=percentile(app_rtt, 50),
                               models_p50_ms=percentile(models, 50),
                               trivial_round_trip_p50_ms=percentile(trivial_rtt, 50),
                               app_overhead_p50_ms=percentile(overhead, 50),
                               trivial_overhead_p50_ms=percentile(trivial_rtt, 50))
        if users and per_user:
            report.load_app = _load(f"http://127.0.0.1:{app_port}/", [f"/{t}" for t in load_tasks], users, per_user)
            report.load_trivial = _load(f"http://127.0.0.1:{trivial_port}/", ["/trivial"], users, per_user)
            report.notes.append(f"load on the app cycles through: {', '.join(load_tasks)}")
        return report
    finally:
        for proc in (app, trivial):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
