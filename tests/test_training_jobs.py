"""Distilling a student from the page's API (/distill_start, /distill_status, /distill_cancel) on tiny models."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
import zipfile
from types import SimpleNamespace

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

import app as app_module
from demo.distill.budget import steps_per_epoch
from demo.serving.training import uploads
from demo.serving.training.jobs import JobError
from demo.serving.training.service import JobRequest

from .apps import InProcessApp, call, call_when_ready, job_status, served
from .builders import write_sentiment_tsv


@pytest.fixture(scope="module")
def trainer(tiny_config):
    yield from served(tiny_config, "--train-max-upload-mb", "1")


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory):
    return write_sentiment_tsv(tmp_path_factory.mktemp("train") / "reviews.tsv", 300, 3)


def start(client, path, task="sentiment", epochs=3, rows=400, layers=1, augment=False, minutes=3):
    return call(client, task, handle_file(str(path)), None, layers, rows, epochs, False, augment, minutes,
                api_name="/distill_start")


wait = job_status


def job_folders(server):
    root = server.training.runner.root
    return sorted(p.name for p in root.glob("job-*")) if root.exists() else []


def test_a_job_distils_a_student_that_answers_only_for_the_session_that_adopts_it(trainer, rows_file):
    """Two visitors (two gradio_client sessions): A distils and adopts; A's requests are answered by A's
    student, B's by the configured one; B can neither cancel nor adopt A's job."""
    a, b = trainer.client(), trainer.client()
    configured = call_when_ready(b, "warm", "/sentiment")["student"]["model"]
    job_id = start(a, rows_file)
    running = wait(a, job_id, states=("running",))
    assert running["state"] == "running" and running["task"] == "sentiment"
    during = call(a, "a good film", api_name="/page_sentiment")  # the app answers while it trains
    assert "measured while training" in str(during[4])
    with pytest.raises(AppError, match="a student can be adopted once its job is done"):
        call(a, job_id, api_name="/distill_adopt")
    done = wait(a, job_id)
    assert done["state"] == "done", done["error"]
    assert done["step"] == done["total_steps"] > 0 and done["elapsed_s"] > 0 and done["phase"] == "done"
    metrics = done["metrics"]
    assert metrics["student_params"] < metrics["teacher_params"] and 0 <= metrics["student_accuracy"] <= 1
    assert str(trainer.training.runner.root) not in json.dumps(done)  # no server paths
    job = trainer.training.runner.job(job_id)
    for action in ("/distill_adopt", "/distill_cancel"):  # the id alone, or a forged secret, acts on nothing
        for forged in (job.id, f"{job.id}.{'0' * 32}"):
            with pytest.raises(AppError, match="only the browser or script that started job"):
                call(b, forged, api_name=action)
    assert "now runs this student" in call(a, job_id, api_name="/distill_adopt")
    assert call(a, "a good film", api_name="/sentiment")["student"]["model"] == f"student of job {job.id}"
    assert call(b, "a good film", api_name="/sentiment")["student"]["model"] == configured
    assert call(a, job_id, api_name="/distill_status")["adopted"] is True
    service = trainer.training
    names = zipfile.ZipFile(service.archive(job_id)).namelist()
    assert any(n.endswith("model.safetensors") for n in names) and any(n.endswith("README.md") for n in names)
    assert any(n.endswith("training/demo/distill/checkpoints.py") for n in names)  # all the training code ...
    folders = {part for n in names for part in n.split("/")[:-1]}
    assert not any(f.startswith("checkpoint-") or f in ("checkpoints", "baselines") for f in folders)  # ... no state
    assert "would upload" in service.publish(job_id, "me/tiny-student", None, dry_run=True)
    service.restore("sentiment", a.session_hash)
    assert call(a, "a good film", api_name="/sentiment")["student"]["model"] == configured


def test_cancel_stops_the_job_removes_its_files_and_only_its_key_can(trainer, rows_file):
    client, other = trainer.client(), trainer.client()
    job_id = start(client, rows_file, epochs=20)
    wait(client, job_id, states=("running",))
    with pytest.raises(AppError, match="one job per visitor at a time"):
        start(client, rows_file)
    with pytest.raises(AppError, match="only the browser or script that started job"):
        call(other, job_id.split(".")[0], api_name="/distill_cancel")
    time.sleep(1)  # in the teacher's pass or the first steps
    began = time.monotonic()
    assert call(client, job_id, api_name="/distill_cancel")["state"] == "cancelled"
    assert time.monotonic() - began < 10 and f"job-{job_id.split('.')[0]}" not in job_folders(trainer)
    assert call(client, job_id, api_name="/distill_status")["state"] == "cancelled"


def test_a_job_killed_from_outside_fails_clearly_and_leaves_nothing(trainer, rows_file):
    client = trainer.client()
    job_id = start(client, rows_file, epochs=20)
    wait(client, job_id, states=("running",))
    os.killpg(trainer.training.runner.job(job_id).process.pid, signal.SIGKILL)
    status = wait(client, job_id)
    assert status["state"] == "failed" and "stopped from outside" in status["error"]
    assert f"job-{job_id.split('.')[0]}" not in job_folders(trainer)


@pytest.mark.parametrize("make, task, message", [
    (None, "sentiment", "upload a file to distil from first"),
    (lambda d: _write(d / "t.txt", "good film\nbad film\n" * 30), "sentiment", "a .txt file is for fill-mask"),
    (lambda d: write_sentiment_tsv(d / "r.tsv", 100, 1), "fill_mask", "upload a .txt file"),
    (lambda d: _write(d / "r.tsv", "sentence\tlabel\n" + "a good film\tneutral\n" * 60), "sentiment",
     "labels neutral are unknown"),
    (lambda d: _write(d / "r.tsv", "sentence\tlabel\n" + "a good film\tpositive\n" * 60), "sentiment",
     "from one class"),
    (lambda d: _write(d / "r.tsv", "words\tscore\n" + "a good film\t1\n" * 60), "sentiment",
     "cannot tell which column holds the text"),
    (lambda d: _write(d / "big.tsv", "sentence\tlabel\n" + ("a good film " * 20 + "\tpositive\n") * 5000),
     "sentiment", "this app takes files up to 1 MB"),
])
def test_bad_input_is_one_sentence_and_leaves_nothing(trainer, tmp_path, make, task, message):
    client = trainer.client()
    before = job_folders(trainer)
    path = make(tmp_path) if make else None
    with pytest.raises(AppError, match=message):
        call(client, task, handle_file(str(path)) if path else None, None, 1, 400, 2, False, False, 3,
             api_name="/distill_start")
    assert job_folders(trainer) == before
    assert call_when_ready(client, "still here", "/sentiment")["task"] == "sentiment"  # the app keeps serving


def test_a_full_disk_is_said_and_nothing_starts(trainer, rows_file, monkeypatch):
    def full(_file):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uploads, "csv", SimpleNamespace(writer=full))  # this module's writes only
    before = job_folders(trainer)
    with pytest.raises(AppError, match="disk is full"):
        start(trainer.client(), rows_file)
    assert job_folders(trainer) == before


def test_an_unknown_job_is_one_sentence_that_echoes_nothing_unread(trainer):
    with pytest.raises(AppError, match="no job 0123456789ab here"):
        call(trainer.client(), "0123456789ab", api_name="/distill_status")
    for bad in ("nope", "x" * 100_000):
        with pytest.raises(AppError, match="that is not a job id") as refused:  # echoes nothing it did not read
            call(trainer.client(), bad, api_name="/distill_status")
        assert len(str(refused.value)) < 200


@pytest.mark.parametrize("host, share, flag, env, allowed", [
    ("127.0.0.1", False, None, "", True), ("0.0.0.0", False, None, "", False), ("127.0.0.1", True, None, "", False),
    ("0.0.0.0", False, True, "", True), ("0.0.0.0", False, None, "1", True)])
def test_training_is_on_for_loopback_only_unless_the_operator_allows_it(host, share, flag, env, allowed, monkeypatch):
    monkeypatch.setenv("ALLOW_TRAINING", env)
    assert app_module.training_allowed(flag, host, share) is allowed


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.slow  # an app process per signal, ~10 s each
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_training_process_ends_with_the_app(tiny_config, rows_file, tmp_path, how):
    """Stopped (SIGTERM) or killed outright (SIGKILL: no handler runs), the app takes its job with it."""
    import psutil

    from .apps import AppServer

    server = AppServer(tiny_config, tmp_path / "app.log")
    try:
        server.wait_until_served()
        client = server.client()
        call_when_ready(client, "warm", "/sentiment", timeout=90)
        job_id = start(client, rows_file, epochs=20)
        wait(client, job_id, states=("running",))
        children = psutil.Process(server.proc.pid).children(recursive=True)
        training = [c for c in children if "demo.distill" in " ".join(c.cmdline())]
        assert len(training) == 1
        server.proc.send_signal(how)
        server.proc.wait(15)
        _gone, alive = psutil.wait_procs(training, timeout=15)
        assert not alive, f"the training process outlived the app ({how.name})"
    finally:
        if server.proc.poll() is None:
            server.stop()


def asked(rows, epochs, layers, baselines, augment, budget, upload=None) -> JobRequest:
    """A sentiment job as the page asks for it."""
    return JobRequest("sentiment", upload, rows=rows, epochs=epochs, layers=layers, baselines=baselines,
                      augment=augment, budget_minutes=budget)


def test_the_estimate_is_the_job_fitted_to_its_budget_from_a_measured_step(trainer, rows_file):
    service = trainer.wait_until_loaded().training
    texts = [line.split("\t")[0] for line in rows_file.read_text().splitlines()[1:]]
    plan = service.plan(asked(270, 2, 3, False, True, 3.0), texts)  # the file's 300 rows, a tenth held out
    assert plan.variants == plan.wanted == 20 and not plan.cut and plan.full_minutes is None
    assert plan.steps == min(service.limits.max_steps, steps_per_epoch(270 * 21, 32) * 2)
    text, offer = service.estimate_and_offer(asked(4000, 2, 3, False, True, 3, str(rows_file)))
    assert f"{plan.steps:,} steps of 32 over {270 * 21:,} texts (270 yours, 5,400 generated)" in text, text
    assert "of your 3:" in text and "The small-data recipe whole: the teacher labels 20 variants" in text
    assert offer is None and "--augment" not in text
    assert service.step_time("sentiment", 3).step_seconds > 0
    plain = service.plan(asked(270, 2, 3, False, False, 3.0), texts)
    assert plain.variants == plain.wanted == 0 and plain.steps == steps_per_epoch(270, 32) * 2
    minutes = lambda t: float(t.split("About **")[1].split()[0])
    with_baseline = service.estimate(asked(4000, 2, 3, True, False, 3, str(rows_file)))
    assert minutes(with_baseline) >= minutes(service.estimate(asked(4000, 2, 3, False, False, 3, str(rows_file))))
    assert "the labels-alone baseline for what the CLI gives it alone, 400 steps" in with_baseline, with_baseline
    for budget, message in (("soon", "give minutes as a number"), (0.1, "give 0.5 to 10 minutes")):
        with pytest.raises(JobError, match=message):
            service.estimate(asked(4000, 2, 3, False, True, budget, str(rows_file)))
        with pytest.raises(AppError, match=message):  # through the API: one sentence, no job, the upload gone
            call(trainer.client(), "sentiment", handle_file(str(rows_file)), None, 1, 100, 1, True, True, budget,
                 api_name="/distill_start")


def test_a_budget_too_small_for_the_recipe_cuts_it_and_names_the_budget_that_fits(trainer, rows_file, monkeypatch):
    """Steps priced as a 2-core CPU prices a MiniLM student's (0.15 s, the baseline's 0.25 s, the teacher 2 ms a
    text): 3 minutes buy part of the recipe for 1,000 rows; the plan says so and offers the budget that runs
    all of it; 5 minutes buy every variant, not every pass."""
    from demo.serving.training.service import StepTime

    service = trainer.wait_until_loaded().training
    monkeypatch.setattr(service, "step_time", lambda *a, **k: StepTime(0.15, 0.25, 0.002))
    cut = service.plan(asked(1000, 2, 3, True, True, 3.0))
    assert 0 < cut.variants < cut.wanted == 20 and cut.cut and cut.baseline_steps == 400
    assert cut.seconds <= 180 and cut.full_minutes is not None and cut.full_minutes > 3
    whole = service.plan(asked(1000, 2, 3, True, True, cut.full_minutes))
    assert whole.variants == 20 and not whole.cut and whole.seconds <= cut.full_minutes * 60
    text, offer = service.estimate_and_offer(asked(1000, 2, 3, True, True, 3.0))
    assert offer == cut.full_minutes and f"A budget of **{offer:g} min** runs the whole recipe" in text, text
    assert f"{cut.variants} of its 20 teacher-labelled variants" in text
    fewer_passes = service.plan(asked(1000, 2, 3, True, True, 5.0))  # every variant, not both passes
    assert fewer_passes.variants == 20 and fewer_passes.steps < whole.steps and fewer_passes.seconds <= 300
    assert "with all its variants, fewer passes" in fewer_passes.reason and " of 2 passes" in fewer_passes.reason
    nothing = service.plan(asked(1000, 2, 3, True, True, 1.7))  # the baseline and part of a pass, no more
    assert nothing.variants == 0 and nothing.steps < 32 and "No generated text" in nothing.reason
    too_small = service.estimate(asked(1000, 2, 3, True, True, 0.5))
    assert "More than your budget" in too_small and "untick the baseline" in too_small, too_small


def finished(trainer, task: str, path, rows: int, baselines: bool, augment: bool, warm: str) -> tuple[dict, str]:
    """A one-epoch, one-layer job through /distill_start, waited for: (its status, its id)."""
    client = trainer.client()
    call_when_ready(client, warm, f"/{task}")
    job_id = call(client, task, handle_file(str(path)), None, 1, rows, 1, baselines, augment, 3,
                  api_name="/distill_start")
    done = wait(client, job_id)
    assert done["state"] == "done", done["error"]
    return done, job_id


def test_an_augmented_job_trains_its_baseline_for_its_own_budget_and_says_what_it_bought(trainer, rows_file):
    """The labels-alone baseline trains as the CLI trains it alone (400 steps here), not as long as the
    student, and the sentence says so."""
    done, job_id = finished(trainer, "sentiment", rows_file, 40, True, True, "a good film")
    metrics = done["metrics"]
    assert metrics["data"]["augmented"] > 40 * 10, metrics["data"]
    assert "augmentation: 20 teacher-labelled" in metrics["augmentation"]["reason"]
    assert [b["name"].split(" (")[0] for b in metrics["baselines"]] == ["layer dropping alone", "hard labels alone"]
    assert [b["steps"] for b in metrics["baselines"]] == [0, 400] and metrics["total_steps"] != 400
    # a random teacher may well lose to 400 steps on the labels: the sentence says which, and the baseline's budget
    assert metrics["bought"].startswith("distilling ") and "labels alone (for its own 400 steps)" in metrics["bought"]
    argv = trainer.training.runner.job(job_id).argv
    assert argv[argv.index("--augment") + 1] == "20" and argv[argv.index("--baselines") + 1] == "labels"
    assert argv[argv.index("--baseline-steps") + 1] == "400"


def test_a_fill_mask_job_distils_from_plain_text(trainer, texts_file):
    done, job_id = finished(trainer, "fill_mask", texts_file, 400, False, True, "the [MASK] film")
    assert "masked_lm" in done["metrics"] and done["metrics"]["objective"] == "mlm"
    assert "--objective mlm" in " ".join(trainer.training.runner.job(job_id).argv)


def test_on_a_public_address_the_tab_shows_the_command_and_there_is_no_training_api(tiny_config):
    """Training off: no /distill_* endpoint at all (listed or not)."""
    server = InProcessApp(tiny_config, "--host", "0.0.0.0")
    try:
        client = server.client()
        assert "Training is **off**" in str(client.config) and "python -m demo.distill distill" in str(client.config)
        endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert not any(name.startswith("/distill_") for name in endpoints)
    finally:
        server.stop()


def test_a_benchmark_cancel_stops_only_its_own_sessions_sweep():
    import threading

    from demo.serving import bench_tab

    mine, theirs = threading.Event(), threading.Event()
    bench_tab.RUNNING.update({"mine": mine, "theirs": theirs})
    try:
        bench_tab.cancel_sweep(SimpleNamespace(session_hash="mine"))
        assert mine.is_set() and not theirs.is_set()
    finally:
        bench_tab.RUNNING.pop("mine", None), bench_tab.RUNNING.pop("theirs", None)
