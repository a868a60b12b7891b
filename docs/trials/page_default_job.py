"""The page's default job against the CLI's labels-alone student, end to end (docs/results.md, "The page's
default job"; issue #36's must-show).

1. Starts the app on CONFIG (its task's teacher is the one the job distils from) and, through the API, runs
   one job with the page's defaults: `/distill_start(task, file, None, 3, ROWS, 2, True)` (the first seven
   arguments, as the page's defaults fill them; the recipe box and the budget take theirs). Prints the plan
   the page showed, the wall time from Start to done and the job's own sentence.
2. Writes the job's split again with the app's own function (9 in 10 rows train, a stratified tenth held
   out) and trains the same student shape on the same training rows alone, with the CLI
   (`--alpha-ce 0 --alpha-hard 1`, its own defaults).
3. Scores both on each held-out FILE that neither saw, paired: `python -m demo.evaluate --against`.

usage: python docs/trials/page_default_job.py CONFIG TASK UPLOAD ROWS OUT HELDOUT [HELDOUT ...]
       [--text-column sentence] [--port 7895]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from demo.data.files import DEFAULT_LIMITS  # noqa: E402 - the checkout's package, run as a script
from demo.models.config import load_config  # noqa: E402
from demo.models.loading import load_model  # noqa: E402
from demo.serving.training.uploads import prepare_classification  # noqa: E402


def serve(config: str, port: int, out: Path) -> subprocess.Popen:
    """The app, its temporary files (and so the job's folder) under OUT/tmp."""
    tmp = out / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "app.py", "--config", config, "--port", str(port)], cwd=ROOT,
                            env={**os.environ, "TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1"},
                            stdout=(out / "app.log").open("w"), stderr=subprocess.STDOUT)


def ready(port: int, task: str) -> Client:
    while True:  # until the app serves and its models have loaded
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            client.predict("warm", api_name=f"/{task}")
            return client
        except Exception:  # noqa: BLE001 - refused, or an error while loading
            time.sleep(2)


def page_job(client: Client, task: str, upload: str, rows: int, out: Path) -> dict:
    start = time.time()
    key = client.predict(task, handle_file(upload), None, 3, rows, 2, True, api_name="/distill_start")
    while (status := client.predict(key, api_name="/distill_status"))["state"] in ("queued", "running"):
        time.sleep(2)
    wall = time.time() - start
    if status["state"] != "done":
        raise SystemExit(f"the job ended {status['state']}: {status.get('error')}")
    folder = next((out / "tmp").glob(f"teacher-student-*/training-jobs-*/job-{key.split('.')[0]}"))
    shutil.copytree(folder / "student", out / "page-student", dirs_exist_ok=True)
    metrics = status.get("metrics") or {}
    return {"wall_s": round(wall, 1), "plan": status.get("plan"), "bought": metrics.get("bought"),
            "data": metrics.get("data"), "total_steps": metrics.get("total_steps"),
            "stages": [(s["stage"], s.get("seconds")) for s in status.get("stages") or []]}


def split_again(config: str, task: str, upload: str, rows: int, out: Path) -> Path:
    """The job's training rows, written by the same function the app used (uploads.prepare_classification)."""
    teacher = load_model(load_config(config).pairs[task].teacher, task, torch.device("cpu"))
    folder = out / "split"
    folder.mkdir(parents=True, exist_ok=True)
    prepare_classification(teacher, upload, rows, folder, 100 * 2**20, DEFAULT_LIMITS)
    return folder


def run(argv: list[str], log: Path) -> None:
    with log.open("w") as f:
        subprocess.run([sys.executable, *argv], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config"), ap.add_argument("task"), ap.add_argument("upload"), ap.add_argument("rows", type=int)
    ap.add_argument("out"), ap.add_argument("heldout", nargs="+")
    ap.add_argument("--text-column", default="sentence"), ap.add_argument("--port", type=int, default=7895)
    a = ap.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    app = serve(a.config, a.port, out)
    try:
        summary = {"page": page_job(ready(a.port, a.task), a.task, a.upload, a.rows, out)}
    finally:
        app.terminate()
        app.wait(30)
    print(json.dumps(summary, indent=1), flush=True)
    split = split_again(a.config, a.task, a.upload, a.rows, out)
    teacher = load_config(a.config).pairs[a.task].teacher.model
    start = time.time()
    run(["-m", "demo.distill", "distill", "--teacher", teacher, "--student-layers", "3", "--train-file",
         str(split / "train.csv"), "--validation-file", str(split / "validation.csv"), "--text-column", "text",
         "--label-column", "label", "--alpha-ce", "0", "--alpha-hard", "1", "--output-dir", str(out / "labels-alone")],
        out / "labels-alone.log")
    summary["labels_alone_cli_s"] = round(time.time() - start, 1)
    pair = out / "pair.yaml"
    pair.write_text(f"device: cpu\ntasks:\n  {a.task}:\n    teacher: {{model: {teacher}}}\n"
                    f"    student: {{model: {out / 'page-student'}}}\n")
    for heldout in a.heldout:
        name = Path(heldout).stem
        run(["-m", "demo.evaluate", "--config", str(pair), "--task", a.task, "--file", heldout, "--text-column",
             a.text_column, "--label-column", "label", "--against", str(out / "labels-alone"), "--out",
             str(out / f"eval-{name}")], out / f"eval-{name}.log")
        report = json.loads((out / f"eval-{name}" / "report.json").read_text())
        paired = report["against"]["paired"]
        summary[name] = {"rows": paired["n"], "student": report["student_accuracy"],
                         "labels_alone": report["against"]["accuracy"]["value"],
                         "teacher": report["teacher_accuracy"], "difference": paired["difference"],
                         "mcnemar_p": paired.get("mcnemar_p"),
                         "macro_f1_difference": report["against"].get("macro_f1_difference")}
    print(json.dumps(summary, indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
