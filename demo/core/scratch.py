"""Temporary folders that live as long as the app: downloads it offers, random weights it builds, the
folders of distillation jobs.

Every folder of a process lies under one root of that process (`teacher-student-<pid>-*` in the temp
directory, with an owner.json naming the process and its start time). They are removed when the process
exits, including the app's fast exit on Ctrl-C / SIGTERM (which skips atexit, so app.py calls remove_all
itself); a process killed outright (SIGKILL, out of memory) leaves its root behind, and the next app to
start removes it with remove_stale(): only roots whose owner is gone, never a live app's.
Folders offered for download are kept under a size and age budget (enforce_budget).

The app also keeps gradio's file cache (uploads, their temporary files, files sent to visitors) inside its
root (use_root_for_temp_files), as it does its benchmark work folders: so the budget sees them, a killed
app's copies of visitors' files go with its root at the next start, and none of the app's work lies
elsewhere in the temp directory.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT_PREFIX = "teacher-student-"
OWNER_FILE = "owner.json"
DOWNLOAD_KINDS = ("evaluation-", "bench-")  # reports offered for download: these the budget bounds
DEFAULT_BUDGET_BYTES = 500 * 10**6  # all download folders and gradio's cache together; app.py's --scratch-max-mb
KEEP_SECONDS = 3600  # a download folder older than this goes at the next enforcement
UPLOAD_KEEP_SECONDS = 600  # a file in gradio's cache older than this goes (an upload no event ever read, a copy sent)
IN_USE_SECONDS = 2  # a cache file younger than this is never deleted for size: the answer being sent now
SYSTEM_TEMP = tempfile.gettempdir()  # where the roots live

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
        root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-", dir=SYSTEM_TEMP))
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
    for root in Path(temp_dir or SYSTEM_TEMP).glob(f"{ROOT_PREFIX}*"):
        if root.is_dir() and root != _ROOT and not _owner_alive(root):
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
    return removed


def set_budget(max_bytes: int) -> None:
    _BUDGET["bytes"] = int(max_bytes)


def folder_bytes(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def use_root_for_temp_files() -> Path:
    """gradio's cache inside this process's root, unless the operator chose a folder for it
    (GRADIO_TEMP_DIR; then only gradio's own hourly sweep bounds it). Returns the cache folder."""
    if not os.environ.get("GRADIO_TEMP_DIR"):
        os.environ["GRADIO_TEMP_DIR"] = str(process_root() / "gradio")
    return Path(os.environ["GRADIO_TEMP_DIR"])


def _gradio_cache() -> Path | None:
    """gradio's cache when it lies in this process's root (where this module may delete from it)."""
    cache = os.environ.get("GRADIO_TEMP_DIR")
    if not cache or _ROOT is None or not Path(cache).resolve().is_relative_to(_ROOT.resolve()):
        return None
    return Path(cache)


def _cache_entries(cache: Path | None) -> list[Path]:
    """gradio keeps each file in a folder named by its hash (uploads also as bare files)."""
    return list(cache.iterdir()) if cache is not None and cache.is_dir() else []


def _last_touched(path: Path) -> float:
    """When an entry was last written or handed out: gradio reuses a cached copy of identical content and
    touches the file, not its hash folder, so a folder is as recent as its newest file (0: gone)."""
    try:
        times = [path.stat().st_mtime]
        if path.is_dir():
            times += [child.stat().st_mtime for child in path.iterdir()]
    except OSError:
        return 0.0
    return max(times)


def _size(path: Path) -> int:
    return folder_bytes(path) if path.is_dir() else (path.stat().st_size if path.exists() else 0)


def enforce_budget(keep: str | Path | None = None) -> list[str]:
    """Delete this process's download folders past their age and gradio's cached files past theirs, then the
    oldest of both until all of them fit the budget; `keep` (the folder just written) and cache files
    younger than IN_USE_SECONDS stay whatever their size. Returns what was deleted."""
    keep = str(keep) if keep is not None else None
    now, deleted = time.time(), []
    candidates = [(Path(p), KEEP_SECONDS, True) for p in _DIRS
                  if os.path.basename(p).startswith(DOWNLOAD_KINDS) and p != keep]
    candidates += [(p, UPLOAD_KEEP_SECONDS, False) for p in _cache_entries(_gradio_cache())]
    touched = {c[0]: _last_touched(c[0]) for c in candidates}
    candidates.sort(key=lambda c: touched[c[0]])
    sizes = {c[0]: _size(c[0]) for c in candidates}
    total = sum(sizes.values()) + (folder_bytes(keep) if keep else 0)
    for path, keep_seconds, ours in candidates:
        age = now - touched[path] if touched[path] else keep_seconds + 1
        if age > keep_seconds or (total > _BUDGET["bytes"] and (ours or age > IN_USE_SECONDS)):
            total -= sizes[path]
            if ours:
                _DIRS.remove(str(path))
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            deleted.append(str(path))
    return deleted


def sweep_every(seconds: float) -> None:
    """enforce_budget on a clock, in a daemon thread: files nobody asked for (an upload posted with no
    event, a report nobody fetched) go by age and size even when no new report is written."""

    def loop():
        while True:
            time.sleep(seconds)
            with contextlib.suppress(OSError):  # a file deleted under us by gradio's own sweep: next round
                enforce_budget()

    threading.Thread(target=loop, name="scratch-sweeper", daemon=True).start()

