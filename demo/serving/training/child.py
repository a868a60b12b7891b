"""The training child process: its command line, how it is started, and what of it a visitor may see.

The child is the project's own `python -m demo.distill distill` (one code path with the CLI). It is
niced (the app's requests come first), in its own process group (cancel stops all of it), and ends
with the app: PR_SET_PDEATHSIG, which Linux ties to the *thread* that forked the child, so every child
is forked by one thread that lives as long as the app (a gradio worker thread retires when idle and
took a running job with it). Progress comes back as data: the CLI's --status-file (run.json) and
history.jsonl, never its log sentences.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from demo.core import zerogpu
from demo.core.formatting import without_paths

REPO_ROOT = Path(__file__).resolve().parents[3]  # demo/serving/training/child.py -> the checkout (`-m demo`)
STATUS_FILE = "run.json"  # in the job's folder, beside student/
LOGGING_STEPS = 5  # a history.jsonl line every 5 steps: the live curve (the CLI's default is for long runs)


def _die_with_parent() -> None:  # runs in the child before exec (Linux): end when the app ends
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the app's own exit stops its children
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.nice(10)


def run_child(argv: list[str], log: str, pid_file: str) -> int:
    """Start the CLI child, say its pid, wait for it: on ZeroGPU this runs inside the lent GPU call (spaces'
    forked worker holds the GPU, and the child it starts sees it); a job cancelled before the GPU came
    starts nothing."""
    if Path(pid_file).with_name(CANCELLED).exists():
        return -signal.SIGTERM
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_die_with_parent,
                                   start_new_session=True)
    Path(pid_file).write_text(str(process.pid), encoding="utf-8")
    return process.wait()


CANCELLED = "cancelled"  # in the job's folder: a job cancelled while it waited for its GPU never starts


class GpuChild:
    """The training child of a ZeroGPU Space, run by run_child inside a `@spaces.GPU` call of the plan's
    duration (a CPU child process could not hold the GPU); to the job runner it is what a Popen is: poll,
    wait, pid (read from the file run_child writes) and returncode."""

    def __init__(self, argv: list[str], log: Path, seconds: float):
        self.pid_file, self.returncode = log.with_name("child.pid"), None
        self._done = threading.Event()
        call = zerogpu.gpu(seconds)(run_child)

        def target():
            try:
                self.returncode = call(argv, str(log), str(self.pid_file))
            except Exception as exc:  # noqa: BLE001 - a GPU call that failed (quota, worker) fails the job, said
                with log.open("a", encoding="utf-8") as out:
                    out.write(f"error: the GPU call failed ({type(exc).__name__}: {str(exc)[:200]})\n")
                self.returncode = 1
            finally:
                self._done.set()

        threading.Thread(target=target, name="gpu-training-call", daemon=True).start()

    @property
    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def poll(self) -> int | None:
        return self.returncode if self._done.is_set() else None

    def wait(self, timeout: float | None = None) -> int | None:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired("gpu-training-call", timeout)
        return self.returncode


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


def start_child(spawner: Spawner, argv: list[str], log: Path, seconds: float):
    """The job's child: a niced CPU process, or on ZeroGPU the same command inside a GPU call of `seconds`."""
    if zerogpu.state().active:
        return GpuChild(argv, log, seconds)
    return spawner.popen(argv, log)


def stop_group(process: subprocess.Popen | GpuChild | None) -> None:
    """SIGTERM to the child's process group, SIGKILL if it has not gone within 5 s. A GPU child not yet
    started (its call waits for a GPU) is told not to start."""
    if process is None or process.poll() is not None:
        return
    if isinstance(process, GpuChild) and process.pid is None:
        process.pid_file.with_name(CANCELLED).touch()
        deadline = time.monotonic() + 5  # it may be starting this moment: then its pid comes
        while process.pid is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.pid is None:
            return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    except ProcessLookupError:
        pass


def distill_argv(teacher: str, files, student_layers: int, epochs: int, baselines: bool, plan,
                 folder: Path) -> list[str]:
    """The CLI command of a job, as a user would type it (sys.executable for `python`): the plan's
    variants, steps and baseline steps as flags (service.JobPlan), so the child runs what the page said."""
    argv = [sys.executable, "-m", "demo.distill", "distill", "--teacher", teacher,
            "--student-layers", str(student_layers), "--train-file", str(files.train),
            "--epochs", str(epochs), "--min-steps", "0", "--max-steps", str(plan.steps),
            "--logging-steps", str(LOGGING_STEPS), "--output-dir", str(folder / "student"),
            "--status-file", str(folder / STATUS_FILE),
            "--targets-cache-dir", str(folder / "targets")]  # the teacher's answers go with the job's folder
    if files.objective == "mlm":
        argv += ["--objective", "mlm"]
    else:
        # The teacher's word embeddings kept: a quarter less time a step, and no worse (docs/results.md)
        argv += ["--validation-file", str(files.validation), "--text-column", "text", "--label-column", "label",
                 "--augment", str(plan.variants), "--freeze-embeddings"]
    if files.transfer is not None:
        argv += ["--transfer-file", str(files.transfer)]
    if baselines:  # the figures the page leads with: layer dropping, and the labels alone for their own budget
        argv += ["--baselines", "labels"]
        if files.objective != "mlm":
            argv += ["--baseline-steps", str(plan.baseline_steps)]
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
        return without_paths(text)
    return value
