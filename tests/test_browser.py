"""A real browser (Debian's headless Chromium via Playwright) uses the page as a person would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a headless Chromium per test: the slow tier
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SENTENCES = {"sentiment": "the acting was great", "fill_mask": "the capital of france is [MASK] .",
             "classify": "i feel happy and loved"}
TAB_NAMES = {"sentiment": "Sentiment", "fill_mask": "Fill-mask", "classify": "Classification (emotion)"}


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}: CI must install Debian's chromium package")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def open_page(page, url: str) -> None:
    """Load the app and wait until it is live: the page's load event (statuses, sizes) has answered.
    Text typed before the app has mounted its components is wiped by the mount (seen in about half
    the page loads on a busy machine), so a person, or a test, types after this."""
    with page.expect_response(lambda r: "/gradio_api/run/predict" in r.url, timeout=30_000):
        page.goto(url, wait_until="load")


def test_each_task_shows_both_answers_and_the_latency_chart(browser, app_server, client, artifacts):
    from .apps import call_when_ready

    call_when_ready(client, "warm", "/sentiment")  # models loaded before the browser starts typing
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    open_page(page, app_server.url)
    for task, sentence in SENTENCES.items():
        page.get_by_role("tab", name=TAB_NAMES[task]).click()
        page.locator(f"#{task}-text textarea").fill(sentence)
        page.locator(f"#{task}-run").click()
        verdict = page.locator(f"#{task}-verdict")
        verdict.get_by_text("speedup").wait_for(timeout=30_000)
        assert "Teacher" in verdict.inner_text() and " ms" in verdict.inner_text()
        for variant in ("teacher", "student"):
            answer = page.locator(f"#{task}-{variant}-answer")
            assert answer.locator("text=%").count() >= 1, f"{task} {variant}: no probabilities shown"
        chart = page.locator(f"#{task}-latency .js-plotly-plot")
        chart.wait_for(timeout=15_000)
        assert "1 requests" in page.locator(f"#{task}-latency").inner_text()
        assert page.locator(f"#{task}-size .js-plotly-plot").count() == 1
        if task == "fill_mask":
            completed = page.locator("#fill_mask-teacher-completed textarea").input_value()
            assert completed.startswith("the capital of france is ") and "[MASK]" not in completed
        page.screenshot(path=str(artifacts / f"{task}.png"), full_page=True)
    page.close()


def test_bad_input_shows_a_message_in_the_page(browser, app_server, client):
    from .apps import call_when_ready

    call_when_ready(client, "warm", "/sentiment")
    page = browser.new_page()
    open_page(page, app_server.url)
    page.get_by_role("tab", name=TAB_NAMES["fill_mask"]).click()
    page.locator("#fill_mask-text textarea").fill("there is no mask in this sentence")
    page.locator("#fill_mask-run").click()
    page.get_by_text("Fill-mask needs exactly one mask").first.wait_for(timeout=15_000)
    page.close()


PAYLOADS = ['<img src=x onerror=alert(1)> [MASK]', '<script>alert("x")</script> [MASK] here']


def test_hostile_text_is_shown_literally_and_never_runs(browser, app_server, client, tmp_path, artifacts):
    from .apps import call_when_ready

    call_when_ready(client, "warm", "/sentiment")
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_page(page, app_server.url)
    page.get_by_role("tab", name=TAB_NAMES["fill_mask"]).click()
    for payload in PAYLOADS:
        page.locator("#fill_mask-text textarea").fill(payload)
        page.locator("#fill_mask-run").click()
        completed = page.locator("#fill_mask-teacher-completed textarea")
        page.wait_for_function("([sel, start]) => document.querySelector(sel).value.startsWith(start)",
                               arg=["#fill_mask-teacher-completed textarea", payload.split("[MASK]")[0]],
                               timeout=15_000)
        assert completed.input_value().startswith(payload.split("[MASK]")[0])  # literally, tags and all
    # The Evaluate tab's explorer shows uploaded text too.
    data = tmp_path / "xss.csv"
    # the default task: sentiment
    data.write_text('text,label\n"<img src=x onerror=alert(2)>",positive\n"<script>alert(3)</script>",negative\n')
    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#evaluate-file input[type=file]").set_input_files(str(data))
    page.wait_for_timeout(1500)
    page.locator("#evaluate-run").click()
    try:
        page.locator("#evaluate-summary").get_by_text("examples").wait_for(timeout=30_000)
    finally:
        page.screenshot(path=str(artifacts / "hostile-evaluate.png"), full_page=True)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(artifacts / "hostile.png"), full_page=True)
    assert dialogs == [], f"a script ran: {dialogs}"
    assert page.evaluate("() => document.querySelectorAll('img[src=x]').length") == 0
    page.close()


@pytest.mark.slow  # its own app and a tiny distillation run with baselines: ~15 s
def test_the_distillation_tab_draws_every_chart_of_a_run(browser, tiny_config, tmp_path, artifacts):
    import yaml

    from demo.distill.cli import main as distill_main

    from .apps import AppServer
    from .builders import write_sentiment_tsv, write_teacher

    train, val = write_sentiment_tsv(tmp_path / "train.tsv", 96, 0), write_sentiment_tsv(tmp_path / "val.tsv", 40, 1)
    run = tmp_path / "student"
    assert distill_main(["distill", "--augment", "0",
                         "--teacher", str(write_teacher(tmp_path / "teacher")), "--student-layers", "1",
                         "--train-file", str(train), "--validation-file", str(val), "--epochs", "2", "--min-steps",
                         "0", "--batch-size", "16", "--logging-steps", "2", "--baselines", "--eval-file",
                         f"other={val}", "--output-dir", str(run)]) == 0
    raw = yaml.safe_load(tiny_config.read_text())
    raw["distillation"] = {"output_dir": str(run)}
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump(raw))
    server = AppServer(config, tmp_path / "app.log")
    try:
        server.wait_until_served()
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        open_page(page, server.url)
        page.get_by_role("tab", name="Distillation").click()
        for elem_id in ("distill-curves", "distill-recipes", "distill-retention", "distill-size"):
            page.locator(f"#{elem_id} .js-plotly-plot").first.wait_for(timeout=20_000)
        assert page.locator("#distill-recipe").get_by_text("python -m demo.distill distill").count() >= 1
        page.screenshot(path=str(artifacts / "distillation.png"), full_page=True)
        page.close()
    finally:
        server.stop()


@pytest.mark.slow  # the API test of the scorecard runs in the default tier
def test_the_scorecard_follows_each_answer_in_the_page(browser, app_server, client, artifacts):
    from .apps import call_when_ready

    call_when_ready(client, "warm", "/sentiment")
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    open_page(page, app_server.url)
    card = page.locator("#scorecard")
    card.get_by_text("DistilBERT's claims").first.wait_for(timeout=15_000)
    assert "evaluate a file" in card.inner_text()
    for n in (1, 2):
        page.locator("#sentiment-text textarea").fill(f"the acting was great, take {n}")
        page.locator("#sentiment-run").click()
        # First the answer itself (the latency chart counts this page's requests), then the scorecard,
        # which a follow-up event redraws; on a loaded CI machine each can take more than a few seconds.
        page.locator("#sentiment-latency").get_by_text(f"{n} requests").first.wait_for(timeout=45_000)
        try:
            # the speedup cell counts this session's requests, and says what they decide
            card.get_by_text(f"over {n} requests").first.wait_for(timeout=30_000)
        except Exception as exc:
            raise AssertionError(f"request {n}: the scorecard shows {card.inner_text()!r}") from exc
    page.screenshot(path=str(artifacts / "scorecard.png"), full_page=True)
    page.close()


def ask(page, task: str, text: str, requests: int) -> None:
    """One Compare in a task tab, waited for until its latency chart counts `requests` in its series."""
    page.get_by_role("tab", name=TAB_NAMES[task]).click()
    page.locator(f"#{task}-text textarea").fill(text)
    page.locator(f"#{task}-run").click()
    page.locator(f"#{task}-latency").get_by_text(f"{requests} requests").first.wait_for(timeout=60_000)


def test_a_visitor_distils_a_student_that_only_they_meet_in_the_task_tab(browser, app_server, client, tmp_path,
                                                                         artifacts, monkeypatch):
    """Upload, a budget too small for the recipe and the one click that fits it, start, the curve grows, the
    student appears beside its teacher for this visitor only (a second visitor keeps the configured student,
    their own series and scorecard), download; the first visitor's latency series restarts at the new
    student; a Cancel mid-run leaves no job folder."""
    from .apps import call_when_ready
    from .builders import write_sentiment_tsv

    call_when_ready(client, "warm", "/sentiment")
    rows = write_sentiment_tsv(tmp_path / "reviews.tsv", 300, 5)
    runner = app_server.training.runner
    page = browser.new_page(viewport={"width": 1400, "height": 2000})
    other = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()  # a second visitor
    open_page(page, app_server.url)
    open_page(other, app_server.url)
    ask(page, "sentiment", "the acting was great", 1)
    ask(other, "sentiment", "a dull film", 1)
    page.get_by_role("tab", name="Distil a student").click()
    page.locator("#train-file input[type=file]").set_input_files(str(rows))
    page.locator("#train-epochs input").fill("3")
    page.locator("#train-layers input[type=number]").fill("1")
    page.locator("#train-estimate").get_by_text("variants of each").first.wait_for(timeout=30_000)
    offer_the_budget_that_fits_the_recipe(page, app_server.training, monkeypatch, artifacts)
    page.locator("#train-augment input").uncheck()  # the recipe's own job test is in test_training_jobs; here speed
    page.locator("#train-estimate").get_by_text("the box is unticked").wait_for(timeout=30_000)
    page.locator("#train-estimate").get_by_text("About").wait_for(timeout=30_000)  # from a measured step time
    page.locator("#train-start").click()
    page.locator("#train-status").get_by_text("running").wait_for(timeout=30_000)
    page.locator("#train-curves .js-plotly-plot").wait_for(timeout=60_000)  # the curve, while it learns
    page.locator("#train-adopted").get_by_text("now runs this student").wait_for(timeout=120_000)
    status = page.locator("#train-status").inner_text()
    assert "done" in status and "over training this student on your labels alone" in status  # what it bought
    page.screenshot(path=str(artifacts / "distil-done.png"), full_page=True)
    with page.expect_download(timeout=30_000) as download:
        page.locator("#train-download a").first.click()
    assert download.value.suggested_filename.endswith(".zip")
    page.get_by_role("tab", name=TAB_NAMES["sentiment"]).click()
    page.locator("#sentiment-status").get_by_text("student of job").wait_for(timeout=60_000)  # by its teacher
    page.locator("#sentiment-text textarea").fill("the acting was great, again")
    page.locator("#sentiment-run").click()
    page.locator("#sentiment-student-answer").get_by_text("student of job").wait_for(timeout=60_000)
    page.locator("#sentiment-verdict").get_by_text("speedup").wait_for(timeout=60_000)
    assert "1 requests" in page.locator("#sentiment-latency").inner_text()  # a new series: 1 request, not 2
    page.screenshot(path=str(artifacts / "distil-result-own-tab.png"), full_page=True)
    second_visitor_keeps_the_configured_pair(other, artifacts)
    page.get_by_role("tab", name="Distil a student").click()
    page.locator("#train-restore").click()
    page.locator("#train-adopted").get_by_text("back to its configured student").wait_for(timeout=30_000)
    cancel_a_second_job(page, rows, runner, artifacts)


def offer_the_budget_that_fits_the_recipe(page, service, monkeypatch, artifacts) -> None:
    """Steps priced as a 2-core CPU prices a MiniLM student's: 2 minutes cut the recipe, the plan names the
    budget that runs all of it on a button, and one click sets it (and the plan is then whole)."""
    from demo.serving.training.service import StepTime

    monkeypatch.setattr(service, "step_time", lambda *a, **k: StepTime(0.15, 0.25, 0.002))
    page.locator("#train-budget input").fill("2")
    page.locator("#train-budget input").press("Enter")
    page.locator("#train-estimate").get_by_text("cut to fit your budget").wait_for(timeout=30_000)
    offer = page.locator("#train-offer")
    offer.get_by_text("the whole recipe").wait_for(timeout=30_000)
    minutes = offer.inner_text().split()[1]
    assert f"A budget of {minutes} min runs the whole recipe" in page.locator("#train-estimate").inner_text()
    page.screenshot(path=str(artifacts / "distil-offer.png"), full_page=True)
    offer.click()
    page.locator("#train-estimate").get_by_text("The small-data recipe whole").wait_for(timeout=30_000)
    assert page.locator("#train-budget input").input_value() == minutes and not offer.is_visible()
    monkeypatch.undo()


def second_visitor_keeps_the_configured_pair(other, artifacts) -> None:
    """The configured student, their own series (now 2 requests), their own scorecard."""
    ask(other, "sentiment", "a dull film again", 2)
    assert "student of job" not in other.locator("#sentiment-status").inner_text()
    assert "student of job" not in other.locator("#sentiment-student-answer").inner_text()
    other.locator("#scorecard").get_by_text("over 2 requests").first.wait_for(timeout=30_000)
    other.screenshot(path=str(artifacts / "second-visitor.png"), full_page=True)
    other.context.close()


def cancel_a_second_job(page, rows, runner, artifacts) -> None:
    """A second job; the page reloaded mid-job finds the same job (its key is in the browser) and cancels it
    from there: nothing of it stays. The first upload was deleted once read, so the file field is empty
    again and the file is given anew."""
    import re

    assert page.locator("#train-file input[type=file]").count() == 1
    page.locator("#train-file input[type=file]").set_input_files(str(rows))
    page.locator("#train-epochs input").fill("20")
    page.locator("#train-start").click()
    page.locator("#train-status").get_by_text("running").wait_for(timeout=30_000)
    page.locator("#train-status").get_by_text("distilling the student").wait_for(timeout=60_000)  # a stage, timed
    job_id = re.search(r"Job ([0-9a-f]{12})", page.locator("#train-status").inner_text()).group(1)
    assert runner.jobs[job_id].state == "running"
    with page.expect_response(lambda r: "/gradio_api/run/predict" in r.url, timeout=30_000):
        page.reload(wait_until="load")  # the visitor reloads mid-job: a new gradio session
    page.get_by_role("tab", name="Distil a student").click()
    page.locator("#train-status").get_by_text(f"Job {job_id}").wait_for(timeout=30_000)  # the same job, found again
    page.locator("#train-status").get_by_text("running").wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "distil-after-reload.png"), full_page=True)
    page.locator("#train-cancel").click()
    page.locator("#train-status").get_by_text("cancelled").wait_for(timeout=30_000)
    cancelled = [job for job in runner.jobs.values() if job.state == "cancelled"]
    assert cancelled and not any(job.folder.exists() for job in cancelled)  # nothing of it stays
    page.screenshot(path=str(artifacts / "distil-cancelled.png"), full_page=True)
    page.close()
