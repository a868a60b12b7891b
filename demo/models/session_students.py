"""Students that answer for one visitor only: a job's student adopted by the session that trained it.

The app's configured pairs (the PairRegistry) are everybody's; a visitor who distils a student sees it
beside the configured teacher in their own tabs, and nobody else does. A PairView is what a session's
handlers use: the registry's pair, with the session's own student where it adopted one. Memory is
bounded: one student per session, at most `limit` sessions' students at once, the oldest released first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

from demo.core.errors import UserError
from demo.core.measure import SizeReport, size_of_loaded
from demo.models.compare import Comparison, warm_up
from demo.models.config import PAIR, ModelSpec
from demo.models.loading import LoadedModel, load_model
from demo.models.registry import ModelStatus, PairRegistry

DEFAULT_LIMIT = 4  # sessions holding their own student at once (each a model in memory); --max-visitor-students


class AdoptionError(UserError, RuntimeError):
    """A student that cannot be adopted (not loadable, not this task's labels); says what to do."""


@dataclass(frozen=True)
class Adopted:
    """One session's own student for one task."""

    task: str
    loaded: LoadedModel
    size: SizeReport
    source: str  # what it came from, e.g. "job 3f2a…": released with it
    seconds: float  # load and warm-up

    @property
    def model(self) -> str:
        return self.loaded.name


class SessionStudents:
    """session -> its adopted student; the oldest session's is released past the limit."""

    def __init__(self, registry: PairRegistry, limit: int = DEFAULT_LIMIT):
        if limit < 0:
            raise ValueError("limit must be 0 or more")
        self.registry, self.limit = registry, limit
        self._lock = threading.Lock()
        self._adopted: OrderedDict[str, Adopted] = OrderedDict()  # oldest adoption first
        self.released: dict[str, str] = {}  # session -> why its student went (said once, then forgotten)

    def adopt(self, session: str, task: str, spec: ModelSpec, source: str) -> Adopted:
        """Load spec as the session's student for task (replacing any it had); blocks until it answers.
        It is named after its source ("student of job …"), never by its folder on the server."""
        if self.limit == 0:
            raise AdoptionError("this app keeps no visitor's student (--max-visitor-students 0); download the "
                                "student and run it with `python app.py --student TASK=DIR`.")
        teacher, _ = self.registry.pair(task)
        start = time.perf_counter()
        loaded = load_model(spec, task, teacher.device)  # LoadError says why in one sentence
        loaded.display_name = f"student of {source}"
        if task != "fill_mask" and loaded.id2label != teacher.id2label:
            raise AdoptionError(f"the student's classes ({', '.join(loaded.id2label.values())}) are not its "
                                f"teacher's ({', '.join(teacher.id2label.values())}).")
        warm_up(loaded)
        adopted = Adopted(task, loaded, size_of_loaded(loaded), source, time.perf_counter() - start)
        with self._lock:
            self._adopted.pop(session, None)
            self._adopted[session] = adopted
            self.released.pop(session, None)
            while len(self._adopted) > self.limit:
                oldest, _ = self._adopted.popitem(last=False)
                self.released[oldest] = (f"your student was released: this app holds {self.limit} visitors' "
                                         "students at once and yours was the oldest.")
        return adopted

    def release(self, session: str, why: str = "") -> Adopted | None:
        with self._lock:
            gone = self._adopted.pop(session, None)
            if gone is not None and why:
                self.released[session] = why
            return gone

    def release_source(self, source: str, why: str) -> None:
        """Release every student that came from source (a job whose folder expired)."""
        with self._lock:
            for session in [s for s, a in self._adopted.items() if a.source == source]:
                del self._adopted[session]
                self.released[session] = why

    def of(self, session: str, task: str) -> Adopted | None:
        with self._lock:
            adopted = self._adopted.get(session)
        return adopted if adopted is not None and adopted.task == task else None

    def take_notice(self, session: str) -> str | None:
        """Why this session's student went away, said once."""
        with self._lock:
            return self.released.pop(session, None)

    def count(self) -> int:
        with self._lock:
            return len(self._adopted)

    def view(self, session: str) -> PairView:
        return PairView(self.registry, self, session)


class PairView:
    """The pairs as one session sees them: the registry's, with the session's own student where it has one.
    The page's handlers, the evaluator and the scorecard go through it, so all show the same student."""

    def __init__(self, registry: PairRegistry, students: SessionStudents | None, session: str):
        self.registry, self.students, self.session = registry, students, session
        self.config, self.device = registry.config, registry.device

    def own(self, task: str) -> Adopted | None:
        return self.students.of(self.session, task) if self.students is not None else None

    def pair(self, task: str) -> tuple[LoadedModel, LoadedModel]:
        teacher, student = self.registry.pair(task)
        adopted = self.own(task)
        return teacher, (adopted.loaded if adopted is not None else student)

    def run(self, task: str, text: str) -> Comparison:
        adopted = self.own(task)
        return self.registry.run(task, text, student=adopted.loaded if adopted is not None else None)

    def status(self, task: str) -> list[ModelStatus]:
        statuses = self.registry.status(task)
        adopted = self.own(task)
        if adopted is None:
            return statuses
        # the session's student replaces the configured one; the int8 column belongs to the configured one
        student = ModelStatus(task, "student", adopted.model, state="ready", seconds=adopted.seconds,
                              device=str(adopted.loaded.device), dtype=adopted.loaded.dtype, size=adopted.size,
                              reason=f"your own student ({adopted.source}); other visitors see the configured one")
        return [student if s.variant == "student" else s for s in statuses if s.variant in PAIR]

    def models(self, task: str) -> dict[str, str]:
        """variant -> the model that answers for this session: the key of its evidence."""
        return {s.variant: s.model for s in self.status(task)}

    def variants(self, task: str) -> tuple[str, ...]:
        return PAIR if self.own(task) is not None else self.config.pairs[task].variants

    def notice(self) -> str | None:
        """Why this session's student went away, said once."""
        return self.students.take_notice(self.session) if self.students is not None else None


def spec_for(path: str, teacher_spec: ModelSpec) -> ModelSpec:
    """A student directory with its teacher's class names (a job's student was trained on the teacher's ids)."""
    return replace(teacher_spec, model=str(path), revision=None)
