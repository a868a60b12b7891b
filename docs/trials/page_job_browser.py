"""Drive the Distil a student tab in Chromium: upload, Start, wait for the result; time it; screenshot.
usage: python docs/trials/page_job_browser.py URL FILE ROWS OUT.png"""
import sys, time
from playwright.sync_api import sync_playwright
url, file, rows, shot = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
with sync_playwright() as pw:
    b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
    page = b.new_page(viewport={"width": 1400, "height": 2400})
    page.goto(url); page.get_by_role("tab", name="Distil a student").wait_for(timeout=120_000)
    time.sleep(3)
    page.get_by_role("tab", name="Distil a student").click()
    page.locator("#train-file input[type=file]").set_input_files(file)
    page.locator("#train-rows input").fill(rows); page.locator("#train-rows input").press("Enter")
    page.locator("#train-layers input[type=number]").fill("3"); page.locator("#train-layers input[type=number]").press("Enter")
    time.sleep(2)
    page.locator("#train-estimate").get_by_text("About").wait_for(timeout=120_000)
    time.sleep(3)
    print("estimate:", page.locator("#train-estimate").inner_text(), flush=True)
    t = time.time()
    page.locator("#train-start").click()
    page.locator("#train-adopted").get_by_text("now runs this student").wait_for(timeout=900_000)
    wall = time.time() - t
    print("status:", page.locator("#train-status").inner_text(), flush=True)
    print(f"wall from Start to the result shown: {wall:.1f} s", flush=True)
    page.screenshot(path=shot, full_page=True)
    b.close()
