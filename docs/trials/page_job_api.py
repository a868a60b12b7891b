"""A job through /distill_start with the page's defaults (3 layers, 2 epochs, the labels-alone baseline, the
recipe box ticked, a 3-minute budget); prints its wall time, plan and sentence (results.md, "In the page").

usage: python docs/trials/page_job_api.py FILE ROWS   (the app serving on port 7895)
"""

import json
import sys
import time

from gradio_client import Client, handle_file


def main(path: str, rows: int) -> None:
    while True:  # until the app serves and its models have loaded
        try:
            client = Client("http://127.0.0.1:7895/", verbose=False)
            client.predict("warm", api_name="/sentiment")
            break
        except Exception:  # noqa: BLE001 - the app answers with an error while loading
            time.sleep(2)
    start = time.time()
    job = client.predict("sentiment", handle_file(path), None, 3, rows, 2, True, api_name="/distill_start")
    while (status := client.predict(job, api_name="/distill_status"))["state"] in ("queued", "running"):
        time.sleep(3)
    metrics = status.get("metrics") or {}
    print(json.dumps({"state": status["state"], "wall_s": round(time.time() - start, 1), "error": status["error"],
                      "bought": metrics.get("bought"), "data": metrics.get("data"),
                      "reason": (metrics.get("augmentation") or {}).get("reason"),
                      "total_steps": metrics.get("total_steps")}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
