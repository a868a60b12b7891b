"""Jobs that outlive the page and wait their turn: the key that owns a job, the queue, the stages, the rows
checked before Start, and the job API as a contract (the old 7-argument /distill_start; docs/serving.md's
script, run as written)."""

from __future__ import annotations

import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from demo.serving.train_tab import TrainHandlers
from demo.serving.training import uploads
from demo.serving.training.jobs import Job, JobError
from demo.serving.training.service import JobRequest

from .apps import call, call_when_ready, job_status, served
from .builders import ROOT, write_sentiment_tsv


@pytest.fixture(scope="module")
def app(tiny_config):
    yield from served(tiny_config, "--train-max-queue", "1")  # one job may wait behind the running one


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """300 rows (270 train, 30 held out) and 60 rows (40 train with the recipe's variants, 20 held out)."""
    root = tmp_path_factory.mktemp("queue")
    return {"rows": write_sentiment_tsv(root / "reviews.tsv", 300, 7),
            "small": write_sentiment_tsv(root / "small.tsv", 60, 8)}


@pytest.fixture(scope="module")
def rows_file(files):
    return files["rows"]


@pytest.fixture(scope="module")
def small_file(files):
    return files["small"]


def start(client, path, epochs=20, minutes=3):
    return call(client, "sentiment", handle_file(str(path)), None, 1, 270, epochs, False, False, minutes,
                api_name="/distill_start")


def status(client, key) -> dict:
    return call(client, key, api_name="/distill_status")


def wait(client, key, states=("done", "failed", "cancelled"), timeout=150) -> dict:
    now = job_status(client, key, states, timeout)
    assert now["state"] in states, now
    return now


def test_a_second_job_waits_its_turn_then_runs_and_both_finish(app, rows_file, small_file):
    """Two API sessions at once: the second is queued with its place and expected start, then runs; the
    first is the old 7-argument call (the recipe box and the budget take their defaults)."""
    a, b = app.client(), app.client()
    call_when_ready(a, "warm", "/sentiment")
    first = call(a, "sentiment", handle_file(str(small_file)), None, 1, 270, 1, False, api_name="/distill_start")
    second = start(b, small_file, epochs=1, minutes=1)
    waiting = status(b, second)
    assert waiting["state"] == "queued" and waiting["position"] == 1 and waiting["remaining_s"] > 0, waiting
    assert waiting["phase"] == "queued" and waiting["plan"].startswith("About")
    assert status(a, first)["state"] == "running"
    done = wait(a, first)
    assert done["state"] == "done", done["error"]
    argv = app.training.runner.job(first).argv
    assert argv[argv.index("--augment") + 1] == "20"  # the recipe box's default (on), as the page's
    assert "of your 4.5:" in done["plan"]  # and the page's default budget
    assert wait(b, second)["state"] == "done"
    runner = app.training.runner
    assert runner.job(second).started >= runner.job(first).ended  # one at a time
    stages = [s["stage"] for s in done["stages"]]
    assert stages[:1] == ["starting (loading the teacher, reading the rows)"] and "the teacher's answers" in stages
    assert stages[-3:] == ["distilling the student", "evaluation", "the model card"], stages
    assert all(s["done"] and s["seconds"] >= 0 for s in done["stages"])
    main = next(s for s in done["stages"] if s["stage"] == "distilling the student")
    assert main["step"] == main["total_steps"] == done["total_steps"]
    assert "held out (each class its share)" in done["notes"][0]
    assert done["plan"].startswith("About") and "key" not in done and first.split(".")[1] not in str(done)


def test_the_queue_is_bounded_and_a_queued_job_leaves_it_when_cancelled(app, rows_file):
    a, b, c = app.client(), app.client(), app.client()
    running = start(a, rows_file)
    queued = start(b, rows_file)
    assert status(b, queued)["position"] == 1
    with pytest.raises(AppError, match=r"the training queue is full \(1 jobs waiting .*about \d+ min of work"):
        start(c, rows_file)
    with pytest.raises(AppError, match=r"your job [0-9a-f]{12} is number 1 in the queue; one job per visitor"):
        start(b, rows_file)  # a visitor's second job, while the first waits
    folder = app.training.runner.job(queued).folder
    assert folder.is_dir()  # its rows are read and written when it joins the queue
    cancelled = call(b, queued, api_name="/distill_cancel")
    assert cancelled["state"] == "cancelled" and not folder.exists()
    third = start(c, rows_file)  # its place is free again
    assert status(c, third)["state"] == "queued" and status(c, third)["position"] == 1
    for client, key in ((c, third), (a, running)):
        call(client, key, api_name="/distill_cancel")
    assert app.training.runner.active() is None and not app.training.runner.waiting


def test_a_reload_finds_the_browsers_job_and_forgets_a_key_it_does_not_know(app, rows_file):
    """What the page does on load with the key from the browser's storage: its own job found again (a
    second tab of the same browser too, which cannot start another while it runs); a stale, forged or
    malformed key said once and dropped."""
    service = app.training
    panel = SimpleNamespace(job="job", status="status", timer="timer")
    handlers = TrainHandlers(service, panel, page_timer=None)
    key = start(app.client(), rows_file)
    found = handlers.reattach(key)
    assert found["job"] == key and f"**Job {key.split('.')[0]}**" in found["status"]
    with pytest.raises(JobError, match=f"your job {key.split('.')[0]} is running"):
        service.start("another-tab", JobRequest("sentiment", str(rows_file), rows=270, epochs=1, layers=1),
                      held_key=key)
    for stale in (f"{key.split('.')[0]}.{'0' * 32}", f"{'1' * 12}.{'2' * 32}", "not a key", key.split(".")[0]):
        gone = handlers.reattach(stale)
        assert gone["job"] is None and "no longer on this server" in gone["status"], stale
    assert handlers.reattach(None) == {"job": None}
    service.cancel(key)
    cancelled = handlers.reattach(key)  # a cancelled job is still this browser's, and says so
    assert "**cancelled**" in cancelled["status"]


def planned(upload: str) -> JobRequest:
    return JobRequest("sentiment", upload, rows=4000, epochs=1, layers=1, baselines=False, augment=False,
                      budget_minutes=3)


def test_the_rows_are_read_before_start(app, tmp_path):
    service = app.training
    skewed = tmp_path / "sorted.tsv"
    skewed.write_text("sentence\tlabel\n" + "a bad film\tnegative\n" * 85 + "a good film\tpositive\n" * 15)
    said = service.estimate(planned(str(skewed)))
    assert "negative 85 (85%) · positive 15 (15%)" in said
    assert "85% of the rows are negative" in said and "fewer than 20 rows of positive (15)" in said
    one = tmp_path / "one.tsv"
    one.write_text("sentence\tlabel\n" + "a good film\tpositive\n" * 60)
    assert "fewer than 20 rows of negative (0)" in service.estimate(planned(str(one)))
    unknown = tmp_path / "unknown.tsv"
    unknown.write_text("sentence\tlabel\n" + "a film\tneutral\n" * 60)
    said = service.estimate(planned(str(unknown)))
    assert "labels neutral are unknown" in said and "Start will refuse this file" in said


def test_the_held_out_tenth_holds_each_class_its_share():
    labels = [0] * 850 + [1] * 150
    train, held = uploads.split(labels)
    assert len(held) == 100 and sorted(train + held) == list(range(1000)) and not set(train) & set(held)
    assert sum(labels[i] for i in held) == 15  # 15% of the held-out rows, as of the file
    rare = [0] * 395 + [1] * 5
    assert sum(rare[i] for i in uploads.split(rare)[1]) == 1  # a rare class is held out too (at least one row)


def test_the_job_api_is_listed_with_its_defaults_and_is_no_mcp_tool(app):
    endpoints = app.client().view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ("/distill_start", "/distill_status", "/distill_cancel", "/distill_adopt"):
        assert name in endpoints
    params = {p["parameter_name"]: p for p in endpoints["/distill_start"]["parameters"]}
    assert params["with_augment"]["parameter_default"] is True and params["budget_minutes"]["parameter_default"] == 4.5


@pytest.mark.slow  # a new interpreter running a job end to end, ~8 s
def test_the_documented_api_script_runs_as_written(app, small_file, tmp_path):
    """docs/serving.md's gradio_client script, unchanged but for the app's address, in a folder holding
    the reviews.tsv it names."""
    text = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    script = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "/distill_start" in b)
    (tmp_path / "reviews.tsv").write_bytes(small_file.read_bytes())
    (tmp_path / "script.py").write_text(script.replace("http://127.0.0.1:7860/", app.url), encoding="utf-8")
    ran = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.startswith("done ") and "now runs this student" in ran.stdout, ran.stdout


def test_without_a_queue_the_slot_is_still_taken_and_the_next_job_refused_with_the_wait(tmp_path):
    """--train-max-queue 0: one job at a time, the next refused (not the first: an idle slot always takes it)."""
    from demo.serving.training.jobs import JobRunner, TrainingLimits

    runner = JobRunner(tmp_path / "jobs", TrainingLimits(max_queue=0))
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    first_id, first_folder = runner.new_folder()
    first = runner.submit(Job(first_id, "a", "sentiment", first_folder, sleeper, planned_seconds=60))
    try:
        assert first.state == "running"
        second_id, second_folder = runner.new_folder()
        with pytest.raises(JobError, match=r"the training queue is full \(0 jobs waiting .*about 1 min of work"):
            runner.submit(Job(second_id, "b", "sentiment", second_folder, sleeper))
        assert not second_folder.exists()  # a refused job leaves nothing
    finally:
        runner.cancel(first.key)
        runner.close()
    assert first.state == "cancelled"
