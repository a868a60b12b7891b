"""The default app's Distillation tab (no run configured: the repository's reference run), in Chromium:
prints the sentence it leads with and saves a screenshot (results.md, "The reference run").

usage: HF_HUB_OFFLINE=1 python app.py --port 7897 &   then   python docs/trials/distillation_tab_shot.py OUT.png
"""

import sys
import time

from playwright.sync_api import sync_playwright


def main(shot: str, url: str = "http://127.0.0.1:7897/") -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(url)
        tab = page.get_by_role("tab", name="Distillation", exact=True)
        tab.wait_for(timeout=60_000)
        tab.click()
        page.locator("#distill-bought").wait_for(timeout=30_000)
        time.sleep(4)  # the charts draw
        print(page.locator("#distill-bought").inner_text())
        page.screenshot(path=shot, full_page=True)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
