"""The Distil a student tab driven in Chromium: upload, rows, 3 layers, Start; waits for the result, prints the
plan shown before Start, the status and the wall time, and saves a screenshot (results.md, "In the page").

usage: python docs/trials/page_job_browser.py URL FILE ROWS OUT.png
"""

import sys
import time

from playwright.sync_api import sync_playwright


def open_distil_tab(pw, url: str, path: str, height: int):
    """(browser, page): Chromium on the app's Distil a student tab, the file uploaded."""
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(url)
    tab = page.get_by_role("tab", name="Distil a student")
    tab.wait_for(timeout=120_000)
    time.sleep(3)
    tab.click()
    page.locator("#train-file input[type=file]").set_input_files(path)
    return browser, page


def main(url: str, path: str, rows: str, shot: str) -> None:
    with sync_playwright() as pw:
        browser, page = open_distil_tab(pw, url, path, 2400)
        for field, value in (("#train-rows input", rows), ("#train-layers input[type=number]", "3")):
            page.locator(field).fill(value)
            page.locator(field).press("Enter")
        page.locator("#train-estimate").get_by_text("About").wait_for(timeout=120_000)
        time.sleep(3)
        print("estimate:", page.locator("#train-estimate").inner_text(), flush=True)
        start = time.time()
        page.locator("#train-start").click()
        page.locator("#train-adopted").get_by_text("now runs this student").wait_for(timeout=900_000)
        print("status:", page.locator("#train-status").inner_text(), flush=True)
        print(f"wall from Start to the result shown: {time.time() - start:.1f} s", flush=True)
        page.screenshot(path=shot, full_page=True)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
