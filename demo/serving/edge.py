"""The page's edge, written once: who is asking (their gradio session) and how a mistake of theirs is
said (a UserError becomes the page's error message, the twin of the CLIs' exit_on_user_error).

Every tab has one shape: a Handlers class (the work, through the service or registry), layout()
returning a dataclass of named components, and wire(panel, handlers) connecting them; every handler a
visitor or API caller reaches goes through @user_errors.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from demo.core import zerogpu
from demo.core.errors import UserError
from demo.core.formatting import page_message
from demo.models.compare import Comparison
from demo.models.session_students import PairView
from demo.models.tasks import EXAMPLE_TEXT

LOCAL_SESSION = "local"  # a call without a gradio session (a test calling a handler directly)
ANSWER_SECONDS = 20  # GPU time asked for one answer of both models on ZeroGPU (a first one also warms them up)


def session_of(request: gr.Request | None) -> str:
    """The visitor's gradio session: a browser tab, or one gradio_client Client."""
    return getattr(request, "session_hash", None) or LOCAL_SESSION


def pair_view(registry, students, request: gr.Request | None) -> PairView:
    """The pairs as this visitor sees them: the configured ones, with their own student where they adopted one."""
    return PairView(registry, students, session_of(request))


class Answers:
    """A visitor's answer to a text, through their PairView: on ZeroGPU inside a lent GPU call (its arguments
    plain strings: spaces hands them to a forked worker), elsewhere a plain call. The page's tabs and the
    API's endpoints answer through one of these."""

    def __init__(self, registry, students):
        self.registry, self.students = registry, students
        self.run = zerogpu.gpu(ANSWER_SECONDS)(self._run)

    def _run(self, task: str, text: str, session: str) -> Comparison:
        view = PairView(self.registry, self.students, session)
        if zerogpu.state().active:  # the models' first pass in this GPU worker, untimed (the load could not)
            key = (task, tuple(sorted(view.models(task).items())))
            zerogpu.warm_once(key, lambda: view.run(task, EXAMPLE_TEXT[task]))
        return view.run(task, text)


def keep_upload(path: str | None) -> None:
    """A visitor's file kept for their next question: its clock (and its cache folder's) starts again, so the
    cache sweep removes it 10 minutes after its last use (core/scratch.py UPLOAD_KEEP_SECONDS)."""
    if path and Path(path).is_file():
        for p in (Path(path), Path(path).parent):
            os.utime(p)


def remove_upload(path: str | None) -> None:
    """A visitor's upload, deleted once read (accepted or refused): nothing of their data stays on the
    server. Only files in gradio's upload folder are touched, never a path of the server's own."""
    from gradio.utils import get_upload_folder

    if path and Path(path).is_file() and Path(path).resolve().is_relative_to(Path(get_upload_folder()).resolve()):
        Path(path).unlink(missing_ok=True)


def user_errors(fn: Callable) -> Callable:
    """A UserError raised by fn becomes one sentence on the page (and for an API caller), no traceback.
    The signature is kept (functools.wraps), so gradio still sees fn's parameters, gr.Request and
    gr.Progress included."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except UserError as exc:
                raise gr.Error(page_message(str(exc)), print_exception=False) from None

        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise gr.Error(page_message(str(exc)), print_exception=False) from None

    return call


def handlers(cls: type) -> type:
    """Wrap every public method of a Handlers class with user_errors (one line instead of one per method)."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(cls, name, user_errors(member))
    return cls
