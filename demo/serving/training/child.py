"""The training child process: its command line, how it is started, and what of it a visitor may see.

The child is the project's own `python -m demo.distill distill` (one code path with the CLI). It is
niced (the app's requests come first), in its own process group (cancel stops all of it), and ends
with the app: PR_SET_PDEATHSIG, which Linux ties to the *thread* that forked the child, so every child
is forked by one thread that lives as long as the app (a gradio worker thread retires when idle and
took a running job with it). Progress comes back as data: the CLI's --status-file (run.json) and
history.jsonl, never its log sentences.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]  # demo/serving/training/child.py -> the checkout (`-m demo`)
STATUS_FILE = "run.json"  # in the job's folder, beside student/
LOGGING_STEPS = 5  # a history.jsonl line every 5 steps: the live curve (the CLI's default is for long runs)
ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s'\"/,;:()\[\]{}]+/)+([^\s'\"/,;:()\[\]{}]*)")


def _die_with_parent() -> None:  # runs in the child before exec (Linux): end when the app ends
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    os.nice(10)


class Spawner:
    """Forks every training child from one thread that lives as long as the app (see the module's note)."""

    def __init__(self):
        self._requests: queue.Queue = queue.Queue()
        threading.Thread(target=self._serve, name="training-spawner", daemon=True).start()

    def _serve(self) -> None:
        while True:
            work, box, done = self._requests.get()
            try:
                box["value"] = work()
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread, which raises it
                box["error"] = exc
            done.set()

    def popen(self, argv: list[str], log: Path) -> subprocess.Popen:
        def work():
            with log.open("w", encoding="utf-8") as out:
                return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                        preexec_fn=_die_with_parent, start_new_session=True)

        box, done = {}, threading.Event()
        self._requests.put((work, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]


def stop_group(process: subprocess.Popen | None) -> None:
    """SIGTERM to the child's process group, SIGKILL if it has not gone within 5 s."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    except ProcessLookupError:
        pass


def distill_argv(teacher: str, files, student_layers: int, epochs: int, baselines: bool, max_steps: int,
                 folder: Path, augment: bool = True) -> list[str]:
    """The CLI command of a job, as a user would type it (sys.executable for `python`)."""
    argv = [sys.executable, "-m", "demo.distill", "distill", "--teacher", teacher,
            "--student-layers", str(student_layers), "--train-file", str(files.train),
            "--epochs", str(epochs), "--min-steps", "0", "--max-steps", str(max_steps),
            "--logging-steps", str(LOGGING_STEPS), "--output-dir", str(folder / "student"),
            "--status-file", str(folder / STATUS_FILE),
            "--targets-cache-dir", str(folder / "targets")]  # the teacher's answers go with the job's folder
    if files.objective == "mlm":
        argv += ["--objective", "mlm"]
    else:
        argv += ["--validation-file", str(files.validation), "--text-column", "text", "--label-column", "label"]
        if not augment:  # else the CLI's default, --augment auto, fitted to --max-steps
            argv += ["--augment", "0"]
    if files.transfer is not None:
        argv += ["--transfer-file", str(files.transfer)]
    if baselines:  # the figures the page leads with: layer dropping and the labels alone, at the same budget
        argv += ["--baselines", "labels"]
    return argv


def scrub(value, folder: Path):
    """A status as a visitor may see it: no server paths (the job's files by name, the interpreter as
    `python`), and each "path" key named "file_path" (gradio takes any object with a "path" string for a
    file to send, and refuses one from outside its folders)."""
    if isinstance(value, dict):
        return {("file_path" if k == "path" else k): scrub(v, folder) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, folder) for v in value]
    if isinstance(value, str):
        text = value.replace(sys.executable, "python").replace(f"{folder}{os.sep}", "").replace(str(folder), ".")
        return ABSOLUTE_PATH.sub(lambda m: m.group(1) or ".", text)
    return value
