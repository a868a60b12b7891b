"""A page that is safe to share: what one visitor does stays theirs, and what a hostile client sends
(plain HTTP, odd types, huge values) gets one sentence and changes nothing else. Tiny models."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from demo.serving.training.service import JobRequest

from .apps import InProcessApp, call, call_when_ready, served
from .builders import write_sentiment_tsv

POOL_IDLE_S = 10  # anyio retires a worker thread idle this long (gradio runs handlers on them)


@pytest.fixture(scope="module")
def app(tiny_config):
    yield from served(tiny_config, "--train-max-steps", "100000", "--train-max-minutes", "3",
                      "--max-visitor-students", "1")


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    return write_sentiment_tsv(tmp_path_factory.mktemp("long") / "visitor-reviews.tsv", 2000, 5)


def uploaded(name: str) -> list:
    """Copies of an upload still in gradio's upload folder."""
    from gradio.utils import get_upload_folder

    return list(Path(get_upload_folder()).rglob(name))


def start(client, path, rows=2000, epochs=20, layers=1):
    return call(client, "sentiment", handle_file(str(path)), None, layers, rows, epochs, False, False, 3,
                api_name="/distill_start")


def state(client, job_id) -> dict:
    return call(client, job_id, api_name="/distill_status")


def wait_running(client, job_id, timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    while (status := state(client, job_id))["state"] == "queued" or not status["step"]:
        assert status["state"] in ("queued", "running"), status
        assert time.monotonic() < deadline
        time.sleep(0.3)
    return status


def test_a_job_outlives_the_thread_that_started_it(app, long_file):
    """The probe's unsent SIGTERM at its root: the thread that forked the child ends (as gradio's idle
    worker threads do), and the job goes on."""
    service, session = app.training, "thread-test"
    started = {}
    worker = threading.Thread(target=lambda: started.update(job=service.start(
        session, JobRequest("sentiment", str(long_file), layers=1, rows=2000, epochs=20, baselines=False))))
    worker.start()
    worker.join()
    job = started["job"]
    time.sleep(3)
    assert job.state == "running" and job.process.poll() is None, job.status()
    service.cancel(job.key)


@pytest.mark.slow  # 20 s by its nature; the test above checks the same root cause in the default tier
def test_a_job_survives_requests_coming_and_going_past_the_pools_idle_timeout(app, long_file):
    a, b = app.client(), app.client()
    call_when_ready(b, "warm", "/sentiment")
    job_id = start(a, long_file)
    wait_running(a, job_id)
    began = time.monotonic()
    while time.monotonic() - began < POOL_IDLE_S + 4:  # other visitors' requests, then quiet spells
        call(b, "a fine film", api_name="/sentiment")
        time.sleep(1.5)
    status = state(a, job_id)
    assert status["state"] in ("running", "done"), status["error"]
    if status["state"] == "running":
        assert call(a, job_id, api_name="/distill_cancel")["state"] == "cancelled"


@pytest.mark.parametrize("rows, layers, epochs, message", [
    (0, 1, 2, r"rows to learn from: give a whole number from 40"), (1, 1, 2, "got 1"),
    (2.5, 1, 2, "rows to learn from: give a whole number"),
    (4001, 1, 2, "to 4,000"), (100, 0, 2, "student layers"), (100, 1, 21, "epochs: give a whole number from 1 to 20"),
    (100, "three", 2, "got 'three'")])
def test_every_cap_holds_for_an_api_caller(app, long_file, rows, layers, epochs, message):
    client = app.client()
    with pytest.raises(AppError, match=message):
        start(client, long_file, rows=rows, epochs=epochs, layers=layers)
    assert app.training.runner.active() is None
    assert not uploaded(long_file.name)  # a refused upload is deleted too


def test_a_number_sent_as_text_is_taken_or_refused_in_a_sentence(app, long_file):
    client = app.client()
    job_id = start(client, long_file, rows="400", epochs="1", layers="1")
    assert state(client, job_id)["state"] in ("running", "done")
    call(client, job_id, api_name="/distill_cancel")


def test_the_evaluators_row_cap_holds_for_an_api_caller(app, tmp_path):
    path = write_sentiment_tsv(tmp_path / "eval.tsv", 60, 1)
    with pytest.raises(AppError, match=r"max rows \(0: all, up to 20,000\): give a whole number .* \(got 100,000\)"):
        call(app.client(), handle_file(str(path)), "sentiment", "sentence", "label", 100_000, api_name="/evaluate")


def private_event(client, elem_id: str) -> tuple[int, int]:
    """(fn_index, trigger id) of the click event on the component with elem_id: what a browser posts."""
    config = client.config
    component = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
    dependency = next(d for d in config["dependencies"] if [component, "click"] in d["targets"])
    return dependency["id"], component


def test_a_script_posting_private_events_cannot_keep_a_task_loading(app):
    """20 'Reload models' posts a second, straight to the queue: the task reloads at most once per
    cooldown, and visitors' requests go on being answered."""
    client, url = app.client(), app.url
    call_when_ready(client, "warm", "/sentiment")
    fn_index, trigger = private_event(client, "sentiment-reload")
    reloads = []
    original = app.registry.reload
    app.registry.reload = lambda *a, **k: (reloads.append(1), original(*a, **k))[1]
    stop = threading.Event()

    def spam():
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                http.post(f"{url}gradio_api/queue/join", json={"data": [], "event_data": None, "fn_index": fn_index,
                                                               "trigger_id": trigger, "session_hash": "probe"})
                time.sleep(0.05)

    spammer = threading.Thread(target=spam)
    spammer.start()
    answered = 0
    try:
        time.sleep(1)
        for _ in range(15):  # visitors' requests for ~3 s of the spam (the cooldown is 30 s)
            try:
                call(client, "good film", api_name="/sentiment")
                answered += 1
            except AppError as exc:
                assert "still loading" in str(exc)
            time.sleep(0.1)
    finally:
        stop.set()
        spammer.join()
        app.registry.reload = original
    assert len(reloads) <= 1 and answered >= 13, (len(reloads), answered)
    app.wait_until_loaded()


def test_visitor_students_are_bounded_and_released_with_their_job(app, long_file):
    """--max-visitor-students 1: a second visitor's adoption releases the first's, who is told once;
    a job's folder expiring releases the student it made."""
    service = app.training
    a, b = app.client(), app.client()
    job_id = start(a, long_file, rows=200, epochs=1)
    deadline = time.monotonic() + 90
    while state(a, job_id)["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state(a, job_id)["state"] == "done"
    call(a, job_id, api_name="/distill_adopt")
    job = service.runner.job(job_id)
    call(b, job_id, api_name="/distill_adopt")  # B holds the key too (A gave it): the same student, a second session
    assert service.students.count() == 1
    configured = app.registry.config.pairs["sentiment"].student.model
    assert "yours was the oldest" in call(a, "good", api_name="/page_sentiment")[3]  # said once, in the verdict
    assert call(a, "good", api_name="/sentiment")["student"]["model"] == configured
    assert call(b, "good", api_name="/sentiment")["student"]["model"] == f"student of job {job.id}"
    service.runner.forget(job.id)  # the folder's expiry
    assert not job.folder.exists() and service.students.count() == 0
    assert call(b, "good", api_name="/sentiment")["student"]["model"] == configured


def test_the_disk_stays_bounded(tiny_config, tmp_path):
    """Evaluation folders beyond --scratch-max-mb go (oldest first); an upload is deleted once read."""
    from demo.core import scratch

    server = InProcessApp(tiny_config, "--scratch-max-mb", "0.0001").wait_until_loaded()
    try:
        client = server.client()
        call_when_ready(client, "warm", "/sentiment")
        for seed in (1, 2):
            path = write_sentiment_tsv(tmp_path / f"eval{seed}.tsv", 60, seed)
            call(client, handle_file(str(path)), "sentiment", "sentence", "label", 0, api_name="/evaluate")
        kept = [p for p in scratch._DIRS if os.path.basename(p).startswith("evaluation-")]
        assert len(kept) == 1  # the newest; the first went past the budget
        kept = uploaded("eval2.tsv")  # the visitor's file stays for their next question (decision, frontier) ...
        assert kept
        old = time.time() - scratch.UPLOAD_KEEP_SECONDS - 5
        for p in (kept[0], kept[0].parent):
            os.utime(p, (old, old))
        scratch.enforce_budget()
        assert not uploaded("eval2.tsv")  # ... and goes 10 minutes after its last use
    finally:
        scratch.set_budget(scratch.DEFAULT_BUDGET_BYTES)
        server.stop()


def test_two_visitors_adopting_at_once_each_get_their_own(app):
    """Two sessions adopt at the same moment: each holds its own student, neither sees the other's."""
    from demo.models.session_students import SessionStudents, spec_for

    students = SessionStudents(app.registry, limit=4)
    teacher = app.registry.config.pairs["sentiment"].teacher
    student_dir = app.registry.config.pairs["sentiment"].student.model
    workers = [threading.Thread(target=students.adopt, args=(session, "sentiment", spec_for(student_dir, teacher),
                                                              f"job {session}")) for session in ("s1", "s2")]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert students.count() == 2
    assert students.of("s1", "sentiment").model == "student of job s1"
    assert students.of("s2", "sentiment").model == "student of job s2"
    assert students.of("s1", "sentiment").loaded is not students.of("s2", "sentiment").loaded
    assert students.view("s3").run("sentiment", "good").student.model == student_dir  # a third: the configured one


@pytest.mark.parametrize("args, endpoint, message", [
    ((123,), "/sentiment", "Expected text, got int"),
    ((5,), "/distill_status", "that is not a job id"),
    (("sentiment", ["teacher"], "1", "8", "many", False), "/benchmark", r"timed repeats: give a whole number .*'many'"),
])
def test_a_wrongly_typed_argument_is_answered_with_a_sentence(app, args, endpoint, message):
    with pytest.raises(AppError, match=message) as refused:
        call(app.client(), *args, api_name=endpoint)
    assert "upstream Gradio app has raised an exception" not in str(refused.value)
