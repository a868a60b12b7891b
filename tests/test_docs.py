"""Every shell command in README.md and docs/ still runs as written: its module exists and each flag
it passes is one the command's --help lists (the commands themselves train and measure for minutes;
their behaviour is tested elsewhere)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex

import pytest

from .builders import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_commands(text: str) -> list[str]:
    """The commands of a Markdown file's bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            commands += [part.strip() for part in re.split(r"&&|;|\|", line) if part.strip()]
    return commands


def invocation(command: str) -> tuple[str, list[str]] | None:
    """(what runs, its arguments) for the project's own commands: `python app.py ...`, `python -m demo.X ...`
    (also under `accelerate launch ... -m demo.X`); None for anything else (pip, apt, pytest, shell)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if words[:2] == ["python", "app.py"]:
        return "app.py", words[2:]
    if "-m" in words:
        i = words.index("-m")
        if i + 1 < len(words) and words[i + 1].startswith("demo"):
            return words[i + 1], words[i + 2:]
    return None


def help_text(target: str, args: list[str]) -> str:
    """The --help of a command (a distill step's own, for demo.distill), run in this process."""
    if target == "app.py":
        from app import parse_args as run
    elif target == "demo.distill":
        from demo.distill.cli import main

        def run(argv):
            return main(argv)

        args = args[:1]  # the step
    else:
        run = importlib.import_module(target).parse_args
        args = []
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        run([*args, "--help"])
    return out.getvalue()


COMMANDS = [(doc.relative_to(ROOT).as_posix(), c) for doc in DOCS for c in shell_commands(doc.read_text())
            if invocation(c) is not None]


def test_the_docs_hold_the_commands_a_user_types():
    documented = {invocation(c)[0] for _, c in COMMANDS}
    assert {"app.py", "demo.bench", "demo.evaluate", "demo.bench_serving", "demo.distill"} <= documented


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in COMMANDS])
def test_each_documented_command_resolves(doc, command):
    target, args = invocation(command)
    if target != "app.py":
        assert importlib.util.find_spec(target) is not None, f"{doc}: no module {target}"
    if target == "demo.distill":
        assert args and args[0] in ("finetune", "distill", "push"), f"{doc}: {command}"
    listed = help_text(target, args)
    flags = {word.split("=")[0].strip("[]") for word in args if word.lstrip("[").startswith("--")}
    unknown = sorted(f for f in flags if not re.search(re.escape(f) + r"(?=[\s,=\]]|$)", listed))
    assert not unknown, f"{doc}: {command!r} passes {unknown}, which --help does not list"
