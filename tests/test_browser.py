"""A real browser (Debian's headless Chromium via Playwright) uses the page as a person would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SENTENCES = {"sentiment": "the acting was great", "fill_mask": "the capital of france is [MASK] .",
             "classify": "i feel happy and loved"}
TAB_NAMES = {"sentiment": "Sentiment", "fill_mask": "Fill-mask", "classify": "Classification (emotion)"}
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", Path(__file__).resolve().parent.parent / "screenshots"))


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


def test_each_task_shows_both_answers_and_the_latency_chart(browser, app_server, client):
    from .conftest import call_when_ready

    call_when_ready(client, "warm", "/sentiment")  # models loaded before the browser starts typing
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(app_server.url, wait_until="load")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for task, sentence in SENTENCES.items():
        page.get_by_role("tab", name=TAB_NAMES[task]).click()
        page.locator(f"#{task}-text textarea").fill(sentence)
        page.locator(f"#{task}-run").click()
        verdict = page.locator(f"#{task}-verdict")
        verdict.get_by_text("speedup").wait_for(timeout=30_000)
        assert "Teacher" in verdict.inner_text() and " ms" in verdict.inner_text()
        for role in ("teacher", "student"):
            answer = page.locator(f"#{task}-{role}-answer")
            assert answer.locator("text=%").count() >= 1, f"{task} {role}: no probabilities shown"
        chart = page.locator(f"#{task}-latency .js-plotly-plot")
        chart.wait_for(timeout=15_000)
        assert "1 requests" in page.locator(f"#{task}-latency").inner_text()
        assert page.locator(f"#{task}-size .js-plotly-plot").count() == 1
        if task == "fill_mask":
            completed = page.locator("#fill_mask-teacher-completed textarea").input_value()
            assert completed.startswith("the capital of france is ") and "[MASK]" not in completed
        page.screenshot(path=str(SCREENSHOT_DIR / f"{task}.png"), full_page=True)
    page.close()


def test_bad_input_shows_a_message_in_the_page(browser, app_server, client):
    from .conftest import call_when_ready

    call_when_ready(client, "warm", "/sentiment")
    page = browser.new_page()
    page.goto(app_server.url, wait_until="load")
    page.get_by_role("tab", name=TAB_NAMES["fill_mask"]).click()
    page.locator("#fill_mask-text textarea").fill("there is no mask in this sentence")
    page.locator("#fill_mask-run").click()
    page.get_by_text("Fill-mask needs exactly one mask").first.wait_for(timeout=15_000)
    page.close()
