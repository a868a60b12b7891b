"""The app's temporary folders: one root per process, removed at exit; a killed app's root removed by the
next app to start, and never a live app's; download folders kept under a budget."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from demo.core import scratch

from .apps import AppServer, call, call_when_ready
from .builders import write_sentiment_tsv


def fake_root(temp: Path, pid: int, started: float | None, name: str = "x") -> Path:
    root = temp / f"{scratch.ROOT_PREFIX}{pid}-{name}"
    (root / "training-jobs-1" / "job-0123456789ab").mkdir(parents=True)
    (root / "training-jobs-1" / "job-0123456789ab" / "train.csv").write_text("text,label\nmy rows,1\n")
    (root / scratch.OWNER_FILE).write_text(json.dumps({"pid": pid, "started": started}))
    return root


def test_only_roots_of_processes_that_are_gone_are_removed(tmp_path):
    live = psutil.Process(os.getpid())
    mine = fake_root(tmp_path, live.pid, live.create_time(), "live")  # a second app, alive: kept
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    dead = fake_root(tmp_path, int(dead_pid), time.time(), "dead")  # its process has ended
    reused = fake_root(tmp_path, live.pid, live.create_time() - 1000, "reused")  # same pid, another process
    removed = scratch.remove_stale(str(tmp_path))
    assert sorted(removed) == sorted([dead, reused]) and mine.is_dir()
    assert not dead.exists() and not reused.exists()


def test_download_folders_are_kept_under_the_budget(monkeypatch):
    monkeypatch.setitem(scratch._BUDGET, "bytes", 1500)
    monkeypatch.setattr(scratch, "_DIRS", [])  # this test's folders only (other tests' are the process's too)
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)  # and not the cache of the apps other tests served
    made = []
    for i in range(3):
        path = scratch.scratch_dir("evaluation-")
        Path(path, "report.md").write_text("x" * 1000)
        os.utime(path, (time.time() - 10 + i, time.time() - 10 + i))
        made.append(path)
    kept_job = scratch.scratch_dir("training-jobs-")  # not a download: never counted nor deleted
    Path(kept_job, "big").write_text("x" * 5000)
    deleted = scratch.enforce_budget(keep=made[-1])
    assert deleted == made[:2] and Path(made[-1]).is_dir() and Path(kept_job).is_dir()
    scratch.remove_all("training-jobs-")
    scratch.remove_all("evaluation-")


def test_a_cached_copy_handed_out_again_is_in_use_however_old_its_folder(monkeypatch, tmp_path):
    """gradio keeps one copy per content hash and, handing it out again, touches the file (not its folder): a
    report identical to an earlier one must not be swept for size in the second before its client fetches it
    (a 403 in the slow tier's twenty evaluations, once)."""
    monkeypatch.setitem(scratch._BUDGET, "bytes", 10)
    monkeypatch.setattr(scratch, "_DIRS", [])
    cache = Path(scratch.process_root()) / "gradio-cache-test"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    old = time.time() - 600
    reused, stale = cache / "hash-reused", cache / "hash-stale"
    for folder in (reused, stale):
        folder.mkdir(parents=True)
        (folder / "predictions.csv").write_text("x" * 100)
        for path in (folder / "predictions.csv", folder):
            os.utime(path, (old, old))
    os.utime(reused / "predictions.csv")  # handed out again just now, as gradio's save_file_to_cache does
    deleted = scratch.enforce_budget()
    assert deleted == [str(stale)] and (reused / "predictions.csv").is_file()


@pytest.mark.slow  # two app processes, ~17 s; the rule itself is tested above in the default tier
def test_a_killed_apps_job_folder_is_gone_once_the_next_app_serves(tiny_config, tmp_path):
    """SIGKILL during a job: no handler runs, the job's folder (the visitor's rows) stays behind; the
    next start removes it before it serves."""
    rows = write_sentiment_tsv(tmp_path / "rows.tsv", 300, 3)
    first = AppServer(tiny_config, tmp_path / "first.log")
    try:
        first.wait_until_served()
        client = first.client()
        call_when_ready(client, "warm", "/sentiment", timeout=90)
        from gradio_client import handle_file

        job_id = call(client, "sentiment", handle_file(str(rows)), None, 1, 270, 20, False, False, 3,
                      api_name="/distill_start").split(".")[0]
        left = list(Path(tempfile.gettempdir()).glob(f"{scratch.ROOT_PREFIX}{first.proc.pid}-*"))
        assert len(left) == 1 and list(left[0].rglob(f"job-{job_id}/train.csv"))
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(15)
        assert left[0].is_dir()  # nothing ran at the kill
    finally:
        if first.proc.poll() is None:
            first.stop()
    second = AppServer(tiny_config, tmp_path / "second.log")
    try:
        second.wait_until_served()
        assert not left[0].exists(), second.log()
        assert "left by an app process that is no longer running" in second.log()
    finally:
        second.stop()
