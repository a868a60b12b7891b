"""What counts as the user's mistake, and how every command-line tool reports it.

Each error a user can fix (a bad flag, file, config, model directory, label) derives from UserError
and carries a message that says how to fix it. The edges (CLIs, the page) catch UserError by type
and show that one line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable

from demo.core.progress import quiet_library_bars

EXIT_USER_ERROR = 2  # the same for every CLI, and what argparse itself uses for a bad flag
EXIT_INTERRUPTED = 130  # Ctrl-C, after what was finished has been written


class UserError(Exception):
    """Input or configuration the user can correct; str() says what to change."""


class UsageError(UserError, ValueError):
    """A flag, or a combination of flags, the command cannot use; the message names the flag to change."""


def exit_on_user_error(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a CLI's main(): a UserError becomes "error: ..." on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        quiet_library_bars()
        try:
            return main(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR

    return wrapper


def whole_number(value, what: str, low: int, high: int) -> int:
    """A count as an API caller may send it (3, 3.0, "3"), or one sentence: never 2.5 rows, never a
    silent default for 0 or nothing."""
    if isinstance(value, bool) or value is None or value == "":
        raise UsageError(f"{what}: give a whole number from {low:,} to {high:,}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what}: give a whole number from {low:,} to {high:,} (got {str(value)[:40]!r}).") from None
    if not math.isfinite(number) or number != int(number):
        raise UsageError(f"{what}: give a whole number from {low:,} to {high:,} (got {str(value)[:40]}).")
    if not low <= int(number) <= high:
        raise UsageError(f"{what}: give a whole number from {low:,} to {high:,} (got {int(number):,}).")
    return int(number)
