"""Figures and user text made readable: byte and count units, Markdown that shows text literally."""

from __future__ import annotations

import html
import json
import math
import re

# a path of the server's (two or more parts), where a visitor would read it; its last part is kept
ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s'\"/,;:()\[\]{}]+/)+([^\s'\"/,;:()\[\]{}]*)")
CLI_WORDS = {  # a message the CLI and the page share, in the page's words where it names a flag (longest first)
    "--transfer-text-column": "the text column", "--text-column": "the text column",
    "--label-column": "the label column", "(--max-rows N)": "(max rows)", "--max-rows": "max rows"}
MAX_MESSAGE_CHARS = 600  # an error shown to a visitor: longer ones are cut, with how much was left out


def without_paths(text: str) -> str:
    """Server paths as their last part: what a visitor may read of them."""
    return ABSOLUTE_PATH.sub(lambda m: m.group(1) or ".", text)


def page_message(text: str) -> str:
    """An error as a visitor (or an API caller) reads it: no server paths, no CLI flags, cut to
    MAX_MESSAGE_CHARS with a count, and escaped so that gradio's pop-up, which renders HTML, shows the
    file's own words (a label "<b>x</b>") as text."""
    text = without_paths(text)
    for flag, words in CLI_WORDS.items():
        text = text.replace(flag, words)
    if len(text) > MAX_MESSAGE_CHARS:
        text = f"{text[:MAX_MESSAGE_CHARS]}… ({len(text) - MAX_MESSAGE_CHARS:,} more characters)"
    return html.escape(text, quote=False)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} GB"


def human_count(n: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


def md_escape(text: str) -> str:
    """Show text literally inside Markdown: no HTML, no markup, no table breaks."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False)).replace("\n", " ")


def code(text: str) -> str:
    """A Markdown code span (its content is shown literally; backticks and pipes cannot break out)."""
    return "`" + str(text).replace("`", "'").replace("|", "/") + "`"


def finite(value):
    """NaN and infinity (a diverged loss, a ratio over zero) as None: JSON has no word for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def json_text(data, indent: int | None = 2) -> str:
    """JSON that every parser reads: undefined figures as null, objects it does not know as strings."""
    return json.dumps(finite(data), indent=indent, default=str)
