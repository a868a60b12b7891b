"""The Distil a student tab's plan before Start, in Chromium: upload, rows, prints the plan shown and saves a
screenshot of the tab (results.md, "The page's default job"); with --take-offer also clicks the budget the
plan offers and prints the plan again. Nothing is started.

usage: python docs/trials/plan_shot.py URL FILE ROWS OUT.png [--take-offer]
"""

import sys
import time

from page_job_browser import open_distil_tab  # beside this script
from playwright.sync_api import sync_playwright


def main(url: str, path: str, rows: str, shot: str, take_offer: bool) -> None:
    with sync_playwright() as pw:
        browser, page = open_distil_tab(pw, url, path, 1500)
        page.locator("#train-rows input").fill(rows)
        page.locator("#train-rows input").press("Enter")
        estimate = page.locator("#train-estimate")
        estimate.get_by_text(f"{int(rows):,} yours").wait_for(timeout=120_000)
        time.sleep(2)
        print("plan:", estimate.inner_text(), flush=True)
        page.locator("#train-estimate").scroll_into_view_if_needed()
        page.screenshot(path=shot, full_page=True)
        if take_offer and page.locator("#train-offer").is_visible():
            print("offer:", page.locator("#train-offer").inner_text(), flush=True)
            page.locator("#train-offer").click()
            estimate.get_by_text("recipe whole").wait_for(timeout=120_000)
            print("after one click:", estimate.inner_text(), flush=True)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:5], take_offer="--take-offer" in sys.argv)
