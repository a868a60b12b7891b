"""A page job through /distill_start with the page's defaults (augment on, 3-minute budget); prints wall and sentence.
usage: python docs/trials/page_job_api.py FILE ROWS (the app on port 7895)"""
import json, sys, time
from gradio_client import Client, handle_file
c = Client("http://127.0.0.1:7895/", verbose=False)
while True:
    try:
        c.predict("warm", api_name="/sentiment"); break
    except Exception:
        time.sleep(2)
t = time.time()
job = c.predict("sentiment", handle_file(sys.argv[1]), None, 3, int(sys.argv[2]), 2, True, True, 3, api_name="/distill_start")
while True:
    s = c.predict(job, api_name="/distill_status")
    if s["state"] not in ("queued", "running"): break
    time.sleep(3)
m = s.get("metrics") or {}
print(json.dumps({"state": s["state"], "wall_s": round(time.time() - t, 1), "error": s["error"], "bought": m.get("bought"),
                  "data": m.get("data"), "reason": (m.get("augmentation") or {}).get("reason"),
                  "total_steps": m.get("total_steps"), "train_seconds": m.get("train_seconds")}, indent=1))
