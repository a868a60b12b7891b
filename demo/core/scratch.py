"""Temporary folders that live as long as the app: downloads it offers, random weights it builds.

Removed when the process exits, including the app's fast exit on Ctrl-C / SIGTERM (which skips
atexit, so app.py calls remove_all itself).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile

_DIRS: list[str] = []


def scratch_dir(prefix: str) -> str:
    """A new temporary folder, deleted when the process ends."""
    path = tempfile.mkdtemp(prefix=prefix)
    _DIRS.append(path)
    return path


@atexit.register
def remove_all(prefix: str = "") -> None:
    """Delete the folders (those of one kind, given their prefix): at exit, all of them."""
    import os

    for path in [p for p in _DIRS if os.path.basename(p).startswith(prefix)]:
        _DIRS.remove(path)
        shutil.rmtree(path, ignore_errors=True)
