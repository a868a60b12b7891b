"""Teacher vs student dashboard: `python app.py [--config pairs.yaml]` (also a Hugging Face Space's entry).

The edge of the program: parse flags, read the config, start loading models in the background,
then serve the page at once. Models never load at import time.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr

from demo.core import scratch, zerogpu
from demo.core.progress import quiet_library_bars
from demo.data.files import (
    MAX_FILE_BYTES,  # the upload cap: the reader's own file limit
    PAGE_LIMITS,
)
from demo.models.config import DEVICES, ConfigError, load_config
from demo.models.registry import PairRegistry
from demo.models.session_students import DEFAULT_LIMIT as DEFAULT_VISITOR_STUDENTS
from demo.models.session_students import SessionStudents, spec_for
from demo.serving import page as ui
from demo.serving.bench_tab import MAX_SWEEP_TOKENS
from demo.serving.training.jobs import JobRunner, TrainingLimits
from demo.serving.training.service import TrainingService
from demo.serving.training.uploads import MIN_ROWS

DEFAULT_HOST = "127.0.0.1"  # local only unless told otherwise; a Space sets GRADIO_SERVER_NAME=0.0.0.0
DEFAULT_PORT = 7860  # Gradio's usual port; GRADIO_SERVER_PORT overrides it, --port overrides both
MAX_QUEUE = 64  # requests waiting per app before new ones are refused as busy ("Queue is full")
SWEEP_SECONDS = 30  # how often the scratch budget (reports, gradio's cache, stray uploads) is enforced


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML file of teacher/student pairs (default: pairs.yaml)")
    parser.add_argument("--device", choices=DEVICES, default=None, help="overrides the config's device")
    parser.add_argument("--fp16", action="store_true", default=None, help="run in float16 (CUDA only)")
    parser.add_argument("--host", default=None,
                        help=f"address to bind (default: $GRADIO_SERVER_NAME, else {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port to serve on (default: $GRADIO_SERVER_PORT, else {DEFAULT_PORT})")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--allow-custom-models", action="store_true",
                        help="let page visitors load any Hub id or directory as teacher/student (off: config only)")
    parser.add_argument("--allow-admin", action="store_true", default=None,
                        help="show the operator's buttons (reload models, run on CPU, random weights) on a public "
                             "address too (on by default only on 127.0.0.1 without --share; $ALLOW_ADMIN=1 does the "
                             "same); without them those events do not exist for any client")
    training = parser.add_argument_group("distilling from the page (the 'Distil a student' tab and /distill_* API)")
    training.add_argument("--allow-training", action="store_true", default=None,
                          help="allow it on a public address too (on by default only on 127.0.0.1 without --share; "
                               "$ALLOW_TRAINING=1 does the same)")
    limits = TrainingLimits()
    training.add_argument("--train-max-rows", type=int, default=limits.max_rows, help="training rows per job")
    training.add_argument("--train-max-steps", type=int, default=limits.max_steps, help="optimiser steps per job")
    training.add_argument("--train-max-upload-mb", type=float, default=limits.max_upload_mb, help="upload size")
    training.add_argument("--train-max-minutes", type=float, default=limits.max_minutes,
                          help="wall time per job, then it is stopped")
    training.add_argument("--train-max-queue", type=int, default=limits.max_queue,
                          help="jobs waiting behind the running one (one per visitor); past this a new job is refused "
                               "with the expected wait")
    parser.add_argument("--student", action="append", default=[], metavar="TASK=DIR",
                        help="make a student the app's own for every visitor (a job's download, unzipped, or any "
                             "directory), in place of the config's; may be given once per task")
    parser.add_argument("--max-visitor-students", type=int, default=DEFAULT_VISITOR_STUDENTS,
                        help="visitors whose own distilled student the app holds in memory at once (one each; the "
                             "oldest is released first; 0: none)")
    parser.add_argument("--max-file-rows", type=int, default=PAGE_LIMITS.max_rows,
                        help="rows a visitor's file may hold once decoded (evaluation and training uploads; a parquet "
                             "file is checked from its metadata before it is decompressed)")
    parser.add_argument("--max-cell-chars", type=int, default=PAGE_LIMITS.max_cell_chars,
                        help="characters of any one cell of a visitor's file (the text boxes take as many)")
    parser.add_argument("--bench-max-tokens", type=int, default=MAX_SWEEP_TOKENS,
                        help="tokens one Benchmark-tab sweep may run through the models (shapes × repeats × variants, "
                             "end to end and model only); a larger sweep is refused with its count")
    parser.add_argument("--scratch-max-mb", type=float, default=scratch.DEFAULT_BUDGET_BYTES / 1e6,
                        help="reports offered for download (evaluations, benchmarks) kept up to this size in all; "
                             "the oldest go first, and any after an hour")
    parser.add_argument("--mcp", action="store_true", default=None,
                        help="also serve the tasks as MCP tools at /gradio_api/mcp/ (default: gradio's "
                             "$GRADIO_MCP_SERVER=true, or $MCP_SERVER=1, turns it on)")
    return parser.parse_args(argv)


def env_flag(name: str) -> bool:
    """A yes/no setting from the environment (a Space's variables): 1, true, yes or on."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def loopback_or(flag: bool | None, host: str, share: bool, env: str) -> bool:
    """On by default where only this machine can reach the app; a public bind needs the operator's yes
    (the flag, or the environment variable env set to 1)."""
    if flag or env_flag(env):
        return True
    return host in ("127.0.0.1", "localhost", "::1") and not share


def training_allowed(flag: bool | None, host: str, share: bool) -> bool:
    return loopback_or(flag, host, share, "ALLOW_TRAINING")


def training_service(args: argparse.Namespace, registry, host: str):
    """The page's job runner: job folders in the app's scratch area (deleted at exit with the rest, and
    by the next app to start if this one is killed); each visitor's student held by SessionStudents."""
    limits = TrainingLimits(max_rows=args.train_max_rows, max_steps=args.train_max_steps,
                            max_upload_mb=args.train_max_upload_mb, max_minutes=args.train_max_minutes,
                            max_queue=args.train_max_queue, read=read_limits(args))
    if limits.max_rows < MIN_ROWS or limits.max_steps < 1 or min(limits.max_upload_mb, limits.max_minutes) <= 0:
        raise ConfigError(f"the --train-max-* caps must be positive (--train-max-rows at least {MIN_ROWS}).")
    if limits.max_queue < 0:
        raise ConfigError("--train-max-queue must be 0 (no queue: one job at a time, others refused) or more.")
    if args.max_visitor_students < 0 or args.scratch_max_mb <= 0:
        raise ConfigError("--max-visitor-students must be 0 or more and --scratch-max-mb positive.")
    runner = JobRunner(Path(scratch.scratch_dir("training-jobs-")), limits)
    return TrainingService(registry, runner, enabled=training_allowed(args.allow_training, host, args.share),
                           students=SessionStudents(registry, args.max_visitor_students))


def read_limits(args: argparse.Namespace):
    """What a visitor's file may cost to read: --max-file-rows and --max-cell-chars."""
    if args.max_file_rows < 1 or args.max_cell_chars < 1:
        raise ConfigError("--max-file-rows and --max-cell-chars must be positive.")
    return replace(PAGE_LIMITS, max_rows=args.max_file_rows, max_cell_chars=args.max_cell_chars)


def mcp_wanted(flag: bool | None) -> bool | None:
    """--mcp, else MCP_SERVER=1 (a Space sets it in its variables): agents then call the tasks as tools.
    None leaves it to gradio, which reads its own documented GRADIO_MCP_SERVER."""
    if flag is not None:
        return flag
    return True if env_flag("MCP_SERVER") else None


def with_operator_students(config, students: list[str]):
    """--student TASK=DIR: the directory becomes the task's student for every visitor (the teacher's
    class names kept: a job's student was trained on the teacher's class ids)."""
    for entry in students:
        task, _, path = entry.partition("=")
        if task not in config.pairs or not path:
            raise ConfigError(f"--student {entry!r}: give TASK=DIR with a configured task "
                              f"({', '.join(config.tasks)}) and the student's directory.")
        if not Path(path).expanduser().is_dir():
            raise ConfigError(f"--student {entry!r}: {path} is not a directory.")
        pair = config.pairs[task]
        config = replace(config, pairs={**config.pairs, task: replace(pair, student=spec_for(path, pair.teacher))})
    return config


@dataclass
class Served:
    """What serve() started: the page, the models behind it, and the training jobs; close() ends them."""

    page: gr.Blocks
    registry: PairRegistry
    training: TrainingService

    def close(self, grace_seconds: float = 3.0) -> None:
        """Training children stop and their folders go; then gradio's own close (its queue, its server),
        given a few seconds: a client holding a connection open must not keep the app up."""
        self.training.runner.close()
        closer = threading.Thread(target=self.page.close, daemon=True)
        closer.start()
        closer.join(grace_seconds)


def serve(argv: list[str] | None = None) -> Served:
    """Read the flags and the config, start loading the models, launch the page without blocking (main()
    then waits for Ctrl-C or SIGTERM; tests call this directly). A bad config raises ConfigError."""
    args = parse_args(argv)
    gpu = zerogpu.state()  # before any model touches CUDA: on ZeroGPU `spaces` patches torch's CUDA first
    if gpu.reason:
        logging.getLogger("app").warning("%s", gpu.reason)
    config = load_config(args.config, strict=False)  # a bad task entry disables that task only
    if args.device is not None:
        config = replace(config, device=args.device)
    if args.fp16:
        config = replace(config, fp16=True)
    config = with_operator_students(config, args.student)
    registry = PairRegistry(config)
    host = args.host or os.environ.get("GRADIO_SERVER_NAME") or DEFAULT_HOST
    training = training_service(args, registry, host)
    for stale in scratch.remove_stale():  # left by an app that was killed; a live app's are kept
        logging.getLogger("app").info("removed %s, left by an app process that is no longer running", stale)
    scratch.use_root_for_temp_files()  # gradio's cache inside this app's root: bounded, swept, gone with a killed app
    scratch.set_budget(int(args.scratch_max_mb * 1e6))
    scratch.sweep_every(SWEEP_SECONDS)
    registry.start()
    port = args.port or int(os.environ.get("GRADIO_SERVER_PORT", DEFAULT_PORT))
    options = ui.PageOptions(allow_custom_models=args.allow_custom_models,
                             allow_admin=loopback_or(args.allow_admin, host, args.share, "ALLOW_ADMIN"),
                             space_id=os.environ.get("SPACE_ID"), read_limits=training.limits.read,
                             bench_max_tokens=args.bench_max_tokens)
    page = ui.build(registry, options, training=training)
    page.queue(default_concurrency_limit=1, max_size=MAX_QUEUE)
    for task, reason in config.task_errors.items():
        logging.getLogger("app").warning("task %s disabled: %s", task, reason)
    page.launch(server_name=host, server_port=port, share=args.share, show_error=False,
                max_file_size=MAX_FILE_BYTES, prevent_thread_lock=True, mcp_server=mcp_wanted(args.mcp))
    return Served(page, registry, training)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    quiet_library_bars()
    try:
        served = serve(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    received: list[str] = []
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or a Space or a shell stopping it
        signal.signal(sig, lambda signum, _frame: (received.append(signal.Signals(signum).name), stop.set()))
    # Not gradio's block_thread(): on Ctrl-C it joins its server for up to 5 s while a client holds a connection
    # open (the shutdown test took 6.7 s with it); Served.close gives the same close 3 s.
    stop.wait()  # the page serves from gradio's threads meanwhile
    print(f"received {received[0] if received else 'a signal'}, shutting down", file=sys.stderr, flush=True)
    served.close()  # well inside 5 s (tests/test_reliability.py)
    scratch.remove_all()
    os._exit(0)  # not sys.exit: a model still loading in a worker thread must not hold the process


if __name__ == "__main__":
    sys.exit(main())
