"""Temporary folders that live as long as the app: downloads it offers, random weights it builds, the
folders of distillation jobs.

Every folder of a process lies under one root of that process (`teacher-student-<pid>-*` in the temp
directory, with an owner.json naming the process and its start time). They are removed when the process
exits, including the app's fast exit on Ctrl-C / SIGTERM (which skips atexit, so app.py calls remove_all
itself); a process killed outright (SIGKILL, out of memory) leaves its root behind, and the next app to
start removes it with remove_stale(): only roots whose owner is gone, never a live app's.
Folders offered for download are kept under a size and age budget (enforce_budget).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import psutil

ROOT_PREFIX = "teacher-student-"
OWNER_FILE = "owner.json"
DOWNLOAD_KINDS = ("evaluation-", "bench-")  # reports offered for download: these the budget bounds
DEFAULT_BUDGET_BYTES = 500 * 10**6  # all download folders together; app.py's --scratch-max-mb
KEEP_SECONDS = 3600  # a download folder older than this goes at the next enforcement

_DIRS: list[str] = []
_ROOT: Path | None = None
_BUDGET = {"bytes": DEFAULT_BUDGET_BYTES}


def _started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


def process_root() -> Path:
    """This process's root folder, made on first use."""
    global _ROOT
    if _ROOT is None or not _ROOT.is_dir():
        root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-"))
        (root / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "started": _started(os.getpid())}),
                                       encoding="utf-8")
        _ROOT = root
    return _ROOT


def scratch_dir(prefix: str) -> str:
    """A new temporary folder, deleted when the process ends."""
    path = tempfile.mkdtemp(prefix=prefix, dir=process_root())
    _DIRS.append(path)
    return path


@atexit.register
def remove_all(prefix: str = "") -> None:
    """Delete the folders (those of one kind, given their prefix): at exit, all of them and the root."""
    global _ROOT
    for path in [p for p in _DIRS if os.path.basename(p).startswith(prefix)]:
        _DIRS.remove(path)
        shutil.rmtree(path, ignore_errors=True)
    if not prefix and _ROOT is not None:
        shutil.rmtree(_ROOT, ignore_errors=True)
        _ROOT = None


def _owner_alive(root: Path) -> bool:
    try:
        owner = json.loads((root / OWNER_FILE).read_text(encoding="utf-8"))
        pid, started = int(owner["pid"]), owner.get("started")
    except (OSError, ValueError, KeyError, TypeError):
        # no owner file yet: a root being made this instant, or a broken one; the name still says the pid
        try:
            pid, started = int(root.name[len(ROOT_PREFIX):].split("-")[0]), None
        except ValueError:
            return False
    now = _started(pid)
    if now is None:
        return False
    return started is None or abs(now - float(started)) < 1.0  # the same process, not a reused pid


def remove_stale(temp_dir: str | None = None) -> list[Path]:
    """Remove the roots that processes no longer running left behind (killed apps); returns them."""
    removed = []
    for root in Path(temp_dir or tempfile.gettempdir()).glob(f"{ROOT_PREFIX}*"):
        if root.is_dir() and root != _ROOT and not _owner_alive(root):
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
    return removed


def set_budget(max_bytes: int) -> None:
    _BUDGET["bytes"] = int(max_bytes)


def folder_bytes(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def enforce_budget(keep: str | Path | None = None) -> list[str]:
    """Delete this process's download folders past their age, then the oldest until all of them fit the
    budget; `keep` (the one just written) stays whatever its size. Returns what was deleted."""
    keep = str(keep) if keep is not None else None
    downloads = [p for p in _DIRS if os.path.basename(p).startswith(DOWNLOAD_KINDS) and p != keep]
    downloads.sort(key=lambda p: os.path.getmtime(p) if os.path.exists(p) else 0)
    now, deleted = time.time(), []
    sizes = {p: folder_bytes(p) for p in downloads}
    total = sum(sizes.values()) + (folder_bytes(keep) if keep else 0)
    for path in downloads:
        old = os.path.exists(path) and now - os.path.getmtime(path) > KEEP_SECONDS
        if old or total > _BUDGET["bytes"]:
            total -= sizes[path]
            _DIRS.remove(path)
            shutil.rmtree(path, ignore_errors=True)
            deleted.append(path)
    return deleted

