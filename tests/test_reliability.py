"""Load, soak, hostile input, faults and safe defaults, against the real app on loopback."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from gradio_client import Client
from gradio_client.exceptions import AppError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demo.core.measure import percentile
from demo.models.config import load_config, parse_config
from demo.models.registry import PairRegistry, TaskUnavailable
from demo.models.tasks import InputError, prepare_text
from demo.serving.task_tab import TaskHandlers

from .apps import AppServer, InProcessApp, call, call_when_ready, free_port
from .builders import make_pair

MIXED = [("sentiment", "the film was good"), ("fill_mask", "paris is the [MASK] of france"),
         ("classify", "i feel so happy today"), ("sentiment", "a dull and bad plot"),
         ("fill_mask", "i love my [MASK] ."), ("classify", "they hate this city")]


def record_figures(artifacts: Path, name: str, figures: dict) -> None:
    """Keep the measured figures in reliability.json among the test artifacts (and print them)."""
    path = artifacts / "reliability.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = figures
    path.write_text(json.dumps(data, indent=2))
    print(f"\n{name}: {figures}")


@pytest.mark.slow
def test_load_16_concurrent_users(app_process, artifacts):
    client = app_process.client()
    call_when_ready(client, "warm", "/sentiment")
    call_when_ready(client, "[MASK] warm", "/fill_mask")
    call_when_ready(client, "warm", "/classify")
    users, per_user = 16, 25
    latencies, errors, busy = [], [], []
    lock = threading.Lock()

    def user(n: int):
        c = Client(app_process.url, verbose=False)
        for i in range(per_user):
            task, text = MIXED[(n + i) % len(MIXED)]
            start = time.perf_counter()
            try:
                result = call(c, text, api_name=f"/{task}")
                assert result["task"] == task
                with lock:
                    latencies.append((time.perf_counter() - start) * 1000)
            except Exception as exc:  # noqa: BLE001 - counted, then asserted on
                with lock:
                    (busy if "Queue is full" in str(exc) else errors).append(repr(exc))

    start = time.perf_counter()
    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    wall = time.perf_counter() - start
    assert not any(t.is_alive() for t in threads), "load test did not finish in time"
    assert errors == []
    assert len(latencies) + len(busy) == users * per_user
    record_figures(artifacts, "load", {"users": users, "requests": users * per_user, "answered": len(latencies),
                            "refused_busy": len(busy), "errors": len(errors), "wall_s": round(wall, 2),
                            "throughput_rps": round(len(latencies) / wall, 1),
                            "p50_ms": round(percentile(latencies, 50), 1),
                            "p95_ms": round(percentile(latencies, 95), 1)})


@pytest.mark.slow
def test_soak_500_requests_do_not_leak(app_process, artifacts):
    import psutil

    proc = psutil.Process(app_process.proc.pid)
    c = app_process.client()
    call_when_ready(c, "warm", "/classify")
    rss = {}
    for i in range(1, 501):
        task, text = MIXED[i % len(MIXED)]
        call(c, text, api_name=f"/{task}")
        if i in (50, 500):
            rss[i] = proc.memory_info().rss
    growth = rss[500] / rss[50] - 1
    record_figures(artifacts, "soak", {"requests": 500, "rss_after_50_mb": round(rss[50] / 1e6, 1),
                            "rss_after_500_mb": round(rss[500] / 1e6, 1), "growth_pct": round(100 * growth, 2)})
    assert growth <= 0.05


SPECIAL = st.sampled_from([
    "\u200b\u200c\u200d\ufeff", "\u202eevil\u202c text", "e\u0301\u0302\u0303" * 20, "😀🔥🎉 🤖", "раураl аррӏе",
    "\x00\x00 nul", "!!!???...,,,", "[MASK] [MASK] [MASK]", "<mask>", "a" * 5000, "word " * 800, "\u0000",
    "\ud7ff\ue000\U0010ffff", "﷽", "\t\n\r", "<script>alert(1)</script>", "' OR 1=1 --", "${jndi:x}",
])
HOSTILE = st.one_of(SPECIAL, st.text(max_size=300), st.text(alphabet=st.characters(codec="utf-8"), max_size=60),
                    st.builds(lambda a, b: f"{a} [MASK] {b}", st.text(max_size=40), st.text(max_size=40)))
GENERATED = {"n": 0}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sentiment", "fill_mask", "classify"])
def test_hostile_text_gets_an_answer_or_a_clear_message(client, task, artifacts):
    call_when_ready(client, "warm [MASK]", f"/{task}")

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(HOSTILE)
    def check(text):
        GENERATED["n"] += 1
        # The oracle: the input checks themselves say whether this text is refused, and with what message.
        try:
            prepare_text(task, text)
            refusal = None
        except InputError as exc:
            refusal = str(exc)
        try:
            summary = call(client, text, api_name=f"/{task}")
        except AppError as exc:
            message = str(exc)
            if refusal is None:  # only one refusal needs the tokenizer: a mask cut off with the text's end
                assert task == "fill_mask" and message.startswith("The [MASK] lies beyond the first"), message
            else:
                assert refusal in message and "Traceback" not in message, message
            return
        assert refusal is None, f"accepted a text the checks refuse ({refusal})"
        assert summary["task"] == task and summary["teacher"]["latency_ms"] > 0
        assert summary["student"]["latency_ms"] > 0 and summary["teacher"]["prediction"]["label"]

    check()
    # still serving
    assert call(client, "the film was good", api_name="/sentiment")["task"] == "sentiment"
    record_figures(artifacts, f"hostile_{task}", {"generated_inputs_so_far": GENERATED["n"]})


@pytest.mark.slow
def test_server_log_has_no_traceback_after_hostile_input(app_server):
    assert "Traceback" not in app_server.log()


# ---- faults ---------------------------------------------------------------------------------------
@pytest.fixture()
def in_process_app(tiny_config):
    """The real page, served in this process so a test can break a model under it."""
    from demo.serving import page as ui

    registry = PairRegistry(load_config(tiny_config))
    registry.load_all()
    page = ui.build(registry)
    page.queue(default_concurrency_limit=1)
    port = free_port()
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield registry, Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        page.close()


def test_a_failing_forward_is_reported_and_recovers_on_reload(in_process_app):
    registry, client = in_process_app
    student = registry.pair("classify")[1].model
    original = student.forward

    def broken(*args, **kwargs):
        raise RuntimeError("injected failure")

    student.forward = broken
    try:
        with pytest.raises(AppError, match=r"The student failed while answering \(injected failure\)"):
            call(client, "i am happy", api_name="/classify")
        assert call(client, "good film", api_name="/sentiment")["task"] == "sentiment"  # others unaffected
    finally:
        student.forward = original
    TaskHandlers(registry, None, "classify").reload()  # the page's Reload button (administrative: not an API endpoint)
    assert call_when_ready(client, "i am happy", "/classify")["task"] == "classify"


def test_out_of_memory_is_reported_with_the_cpu_option(tiny_config):
    registry = PairRegistry(load_config(tiny_config))
    registry.load_task("classify")
    teacher = registry.pair("classify")[0].model

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    teacher.forward = oom
    with pytest.raises(TaskUnavailable, match=r"ran out of GPU memory.*Run this task on CPU"):
        registry.run("classify", "i am happy")


def test_a_broken_model_recovers_when_fixed_and_reloaded(tmp_path):
    dirs = make_pair("classify", tmp_path)
    good = dirs["student"] / "model.safetensors"
    saved = good.read_bytes()
    good.write_bytes(saved[:100])  # truncated weights
    registry = PairRegistry(parse_config({"device": "cpu", "tasks": {"classify": {
        "teacher": str(dirs["teacher"]), "student": str(dirs["student"])}}}))
    registry.load_all()
    with pytest.raises(TaskUnavailable, match="truncated or corrupt"):
        registry.run("classify", "hello")
    good.write_bytes(saved)
    registry.reload("classify", wait=True)
    assert registry.run("classify", "hello").task == "classify"


def test_one_bad_config_entry_disables_only_that_task(tiny_config, tmp_path):
    raw = yaml.safe_load(Path(tiny_config).read_text())
    raw["tasks"]["sentiment"] = {"teacher": {"model": "x", "labels": "oops"}, "student": "y"}
    path = tmp_path / "pairs.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path, strict=False)
    assert config.tasks == ["fill_mask", "classify"] and "'labels' must be" in config.task_errors["sentiment"]
    server = InProcessApp(path)
    try:
        c = server.client()
        assert call_when_ready(c, "i feel happy", "/classify")["task"] == "classify"
        names = c.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert "/sentiment" not in names
        page = __import__("urllib.request").request.urlopen(server.url + "config").read().decode()
        assert "entry in the config was refused" in page
    finally:
        server.stop()


# ---- process -------------------------------------------------------------------------------------
@pytest.mark.slow  # a new interpreter per signal: ~12 s each
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_app_shuts_down_cleanly_within_5_seconds(tiny_config, tmp_path, sig):
    server = AppServer(tiny_config, tmp_path / "app.log")
    server.wait_until_served()
    call_when_ready(server.client(), "good", "/sentiment")
    start = time.monotonic()
    server.proc.send_signal(sig)
    server.proc.wait(timeout=10)
    elapsed = time.monotonic() - start
    server.stop()
    assert elapsed < 5, f"took {elapsed:.1f}s"


def test_binds_to_loopback_and_gradio_server_name_wins(tiny_config):
    server = InProcessApp(tiny_config, env={"GRADIO_SERVER_NAME": "127.0.0.2"})
    try:
        socket.create_connection(("127.0.0.2", server.port), timeout=5).close()  # bound where it was told
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    finally:
        server.stop()
    from app import DEFAULT_HOST, parse_args

    assert DEFAULT_HOST == "127.0.0.1" and parse_args([]).share is False


def test_custom_models_need_the_operator_flag_and_are_never_an_api_endpoint(client, tiny_config, tmp_path):
    import gradio as gr

    from demo.serving.task_tab import TaskHandlers

    assert not any(name.startswith("/custom_") for name in
                   client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert "Use other models" not in json.dumps(client.config)  # no such accordion without the flag
    server = InProcessApp(tiny_config, "--allow-custom-models")
    try:
        c = server.client()
        call_when_ready(c, "good", "/sentiment")
        assert "Use other models" in json.dumps(c.config)  # the page offers it to visitors ...
        endpoints = c.view_api(print_info=False, return_format="dict")
        assert not any("custom" in name for kind in endpoints.values() for name in kind)  # ... the API never
        pairs = yaml.safe_load(Path(tiny_config).read_text())["tasks"]["classify"]
        with pytest.raises(gr.Error, match="'model' must be a Hub id or a local directory"):
            TaskHandlers(server.registry, None, "classify").custom(" ", pairs["student"]["model"])  # the page's handler
    finally:
        server.stop()
