"""The Evaluate tab answering "Which variant to ship?" on a labelled file, in Chromium: evaluates first (the
file stays for the next question), then asks for the frontier; prints the answer with its reasons and saves
a screenshot (issue 38's must-show).

usage: python app.py --config runs/pair.yaml --port 7898 &
       python docs/trials/frontier_tab_shot.py FILE OUT.png [URL]
"""

import sys
import time

from playwright.sync_api import sync_playwright


def main(data: str, shot: str, url: str = "http://127.0.0.1:7898/") -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 2200})
        with page.expect_response(lambda r: "/gradio_api/run/predict" in r.url, timeout=60_000):
            page.goto(url, wait_until="load")
        page.get_by_role("tab", name="Evaluate", exact=True).click()
        page.locator("#evaluate-file input[type=file]").set_input_files(data)
        page.locator("#evaluate-file-note").get_by_text("rows").wait_for(timeout=60_000)
        page.locator("#evaluate-run").click()
        page.locator("#evaluate-summary").get_by_text("examples").wait_for(timeout=300_000)
        began = time.monotonic()
        page.locator("#evaluate-frontier").click()  # the same file, kept for this question
        page.locator("#evaluate-recommendation").get_by_text("Why not the others").wait_for(timeout=300_000)
        print(f"answered in {time.monotonic() - began:.0f} s")
        time.sleep(3)  # the chart draws
        print(page.locator("#evaluate-recommendation").inner_text())
        page.locator("#evaluate-recommendation").scroll_into_view_if_needed()
        page.screenshot(path=shot, full_page=True)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
