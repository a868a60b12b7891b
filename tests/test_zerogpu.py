"""ZeroGPU, the hardware of a free account's Gradio Space, checked without CUDA: the app with ZeroGPU's
variables and no GPU (it serves on CPU and says why), and every piece of GPU work routed through
`@spaces.GPU` with its duration (a stand-in `spaces` that records each call and runs it here)."""

from __future__ import annotations

import sys
import time
import types

import pytest
from gradio_client import handle_file

from demo.core import zerogpu

from .apps import InProcessApp, call, call_when_ready
from .builders import write_sentiment_tsv


def test_with_zerogpus_variables_and_no_cuda_the_app_starts_on_cpu_and_says_why(tiny_config, monkeypatch):
    """A Space set to ZeroGPU whose torch sees no CUDA (here: the CPU wheel, `spaces` installed): the real
    `spaces` import fails inside app.serve(), which serves on CPU and says why in its header and log."""
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setenv("SPACES_ZERO_DEVICE_API_URL", "http://127.0.0.1:9")
    zerogpu.state.cache_clear()
    server = None
    try:
        server = InProcessApp(tiny_config).wait_until_loaded()
        client = server.client()
        answer = call_when_ready(client, "a fine film", "/sentiment")
        assert answer["teacher"]["device"] == "cpu" and answer["student"]["device"] == "cpu"
        header_text = next(c["props"]["value"] for c in client.config["components"]
                           if "Teacher vs student" in str(c.get("props", {}).get("value", "")))
        assert "ZeroGPU is set (SPACES_ZERO_GPU) but" in header_text and "run on CPU" in header_text
        assert "ZeroGPU is set" in server.log() and "Traceback" not in server.log()
    finally:
        if server is not None:
            server.stop()
        zerogpu.state.cache_clear()  # the next caller decides again, with this test's variables gone


def test_on_zerogpu_gpu_work_is_decorated_with_its_duration_and_elsewhere_left_alone(monkeypatch):
    """The placement logic without CUDA: off ZeroGPU the function is returned as it is (spaces never
    imported); on ZeroGPU (a stand-in `spaces` that records) it goes through spaces.GPU with its duration,
    clipped to what one call may ask."""
    def work(rows):
        return rows * 2

    monkeypatch.setattr(zerogpu, "state", lambda: zerogpu.ZeroGPUState(False, False))
    assert zerogpu.gpu(30)(work) is work
    asked = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda fn, duration: (asked.append(duration), fn)[1]
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setattr(zerogpu, "state", lambda: zerogpu.ZeroGPUState(True, True))
    assert zerogpu.gpu(30)(work)(4) == 8 and asked == [30]
    zerogpu.gpu(10_000)(work)
    assert asked[-1] == zerogpu.MAX_SECONDS
    by_rows = zerogpu.gpu(lambda rows: rows / 10)(work)
    assert by_rows(4) == 8 and asked[-1](4000) == 300 and asked[-1](50) == 5
    assert "int8 variants stay on CPU" in zerogpu.ZeroGPUState(True, True).device_note()



@pytest.fixture
def on_zerogpu(monkeypatch):
    """ZeroGPU as the app sees it, with a stand-in `spaces` whose GPU() records (function, seconds) per call
    and runs the function here (the real one hands it to a forked worker that holds the GPU)."""
    asked = []

    def gpu(fn, duration):
        def call_on_gpu(*args, **kwargs):
            asked.append((fn.__name__, duration(*args, **kwargs) if callable(duration) else duration))
            return fn(*args, **kwargs)
        return call_on_gpu

    fake = types.ModuleType("spaces")
    fake.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setattr(zerogpu, "state", lambda: zerogpu.ZeroGPUState(True, True))
    return asked


def test_on_zerogpu_answers_evaluations_and_a_training_job_run_inside_gpu_calls(tiny_config, tmp_path, on_zerogpu):
    server = InProcessApp(tiny_config).wait_until_loaded()
    try:
        client = server.client()
        assert call_when_ready(client, "a fine film", "/sentiment")["task"] == "sentiment"
        assert ("_run", 20) in on_zerogpu  # the API's answer, in a 20-s GPU call
        rows = write_sentiment_tsv(tmp_path / "rows.tsv", 120, 3)
        call(client, handle_file(str(rows)), "sentiment", "sentence", "label", 100, api_name="/evaluate")  # 100 rows
        assert ("_evaluate_in_session", 20 + 0.02 * 100) in [(n, round(d, 6)) for n, d in on_zerogpu]
        key = call(client, "sentiment", handle_file(str(rows)), None, 1, 270, 20, False, False, 3,
                   api_name="/distill_start")
        job = server.training.runner.job(key)
        training = [d for n, d in on_zerogpu if n == "run_child"]
        assert training == [zerogpu.clip(job.planned_seconds * 1.2 + 30)]  # the plan's time, asked of the GPU
        assert ("_time_step_now", 20) in on_zerogpu  # the step that priced the plan, in a GPU call too
        deadline = time.monotonic() + 60
        while job.process.pid is None:  # the child the GPU call started, found by the pid it wrote
            assert time.monotonic() < deadline and job.process.poll() is None
            time.sleep(0.1)
        assert call(client, key, api_name="/distill_cancel")["state"] == "cancelled"
        assert job.process.poll() is not None and not job.folder.exists()
    finally:
        server.stop()


def test_a_gpu_child_reports_its_exit_as_a_process_does(tmp_path, on_zerogpu):
    """The runner reads a GPU call's training child as a Popen: its pid, then its exit code once done."""
    import sys

    from demo.serving.training.child import GpuChild

    child = GpuChild([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "job.log", seconds=45)
    assert child.wait(60) == 3 and child.poll() == 3 and child.pid is not None
    assert on_zerogpu == [("run_child", 45)]
