"""Teacher/student pairs and app settings, read from YAML and checked where they enter.

Nothing here loads a model: a config is plain data that the app, the benchmark and the
evaluator all read the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from demo.core.errors import UserError

# Task key -> what the page calls it. The keys double as the Gradio API names.
TASKS: dict[str, str] = {
    "sentiment": "Sentiment",
    "fill_mask": "Fill-mask",
    "classify": "Classification (emotion)",
}
LABELLED_TASKS = ("sentiment", "classify")  # the tasks with gold labels to score against (not fill-mask)
DEVICES = ("auto", "cpu", "cuda", "mps")
# One word for every model the tools compare: a "variant" of the task's pair.
PAIR = ("teacher", "student")  # the two PyTorch models every task has; every other variant: models/variants.py
APP_INT8 = "student-int8"  # the app's optional third column: the student as int8 on this machine's fastest backend

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "pairs.yaml"


class ConfigError(UserError, ValueError):
    """A configuration problem, phrased so that the user knows what to change."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of a pair: where to load it from and, optionally, its class names."""

    model: str  # Hub id or local directory
    labels: tuple[str, ...] | None = None  # overrides the checkpoint's id2label, in class order
    revision: str | None = None  # Hub branch, tag or commit

    @property
    def is_local(self) -> bool:
        return Path(self.model).expanduser().is_dir()


@dataclass(frozen=True)
class TaskPair:
    task: str
    teacher: ModelSpec
    student: ModelSpec
    int8: bool = False  # YAML `int8: true`: the student as int8 (CPU only) in a third column, the variant APP_INT8

    def spec(self, variant: str) -> ModelSpec:
        return self.teacher if variant == "teacher" else self.student

    @property
    def variants(self) -> tuple[str, ...]:
        return PAIR + ((APP_INT8,) if self.int8 else ())


@dataclass(frozen=True)
class DistillationLink:
    """The student this project made: its Hub repo, its run's local output directory, or both."""

    hub_repo: str | None = None
    output_dir: str | None = None

    def card_text(self) -> str | None:
        """The model card's body (YAML header dropped), read from the local output directory."""
        if not self.output_dir:
            return None
        path = Path(self.output_dir) / "README.md"
        if not path.is_file():
            return None
        text = path.read_text(encoding="utf-8")
        if text.startswith("---"):
            end = text.find("\n---", 3)
            text = text[end + 4:] if end != -1 else text
        return text.strip()


@dataclass(frozen=True)
class AppConfig:
    device: str = "auto"
    fp16: bool = False
    pairs: dict[str, TaskPair] = field(default_factory=dict)
    source: str = "<defaults>"
    distillation: DistillationLink | None = None
    task_errors: dict[str, str] = field(default_factory=dict)  # task -> why its entry was refused

    @property
    def tasks(self) -> list[str]:
        """Tasks in the page's fixed order, whatever the file's order."""
        return [t for t in TASKS if t in self.pairs]


def model_spec(raw: object, where: str) -> ModelSpec:
    if isinstance(raw, str):
        raw = {"model": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping like {{model: ID_OR_DIR}}, got {raw!r}.")
    unknown = set(raw) - {"model", "labels", "revision"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: model, labels, revision.")
    model = raw.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"{where}: 'model' must be a Hub id or a local directory, got {model!r}.")
    labels = raw.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not labels or not all(isinstance(x, (str, int)) for x in labels):
            raise ConfigError(f"{where}: 'labels' must be a non-empty list of class names in class order.")
        labels = tuple(str(x) for x in labels)
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{where}: 'labels' has duplicates: {list(labels)}.")
    revision = raw.get("revision")
    if revision is not None and not isinstance(revision, str):
        raise ConfigError(f"{where}: 'revision' must be a string.")
    model = model.strip()
    if model.startswith(("~", ".", "/")):
        model = str(Path(model).expanduser())
    return ModelSpec(model=model, labels=labels, revision=revision)


def parse_config(raw: object, source: str = "<dict>", base_dir: Path | None = None, strict: bool = True) -> AppConfig:
    """Validate a loaded YAML document; relative model directories resolve against base_dir.

    strict=False (the app): a bad task entry disables that task only, its reason kept in task_errors.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the file must be a mapping with 'device' and 'tasks'.")
    unknown = set(raw) - {"device", "fp16", "tasks", "distillation"}
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: device, fp16, tasks, distillation.")
    device = str(raw.get("device", "auto")).lower()
    if device not in DEVICES:
        raise ConfigError(f"{source}: device {device!r} is not one of {', '.join(DEVICES)}.")
    fp16 = raw.get("fp16", False)
    if not isinstance(fp16, bool):
        raise ConfigError(f"{source}: fp16 must be true or false.")
    tasks = raw.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise ConfigError(f"{source}: 'tasks' must map at least one of {', '.join(TASKS)} to a teacher and a student.")
    pairs: dict[str, TaskPair] = {}
    task_errors: dict[str, str] = {}
    for task, entry in tasks.items():
        try:
            pairs[task] = _task_pair(task, entry, source, base_dir)
        except ConfigError as exc:
            if strict or task not in TASKS:
                raise
            task_errors[task] = str(exc)
    if not pairs and not task_errors:
        raise ConfigError(f"{source}: no usable task.")
    return AppConfig(device=device, fp16=fp16, pairs=pairs, source=source, task_errors=task_errors,
                     distillation=_distillation(raw.get("distillation"), source, base_dir))


def _task_pair(task: str, entry: object, source: str, base_dir: Path | None) -> TaskPair:
    if task not in TASKS:
        raise ConfigError(f"{source}: unknown task {task!r}; known tasks: {', '.join(TASKS)}.")
    if not isinstance(entry, dict) or not set(PAIR) <= set(entry) or set(entry) - {*PAIR, "onnx", "int8"}:
        raise ConfigError(f"{source}: task {task!r} needs exactly a 'teacher' and a 'student' (and optionally int8).")
    int8 = entry.get("int8", entry.get("onnx", False))  # `onnx:` is the key's earlier name, still read
    if not isinstance(int8, bool):
        raise ConfigError(f"{source}: tasks.{task}.int8 must be true or false.")
    specs = {}
    for variant in PAIR:
        spec = model_spec(entry[variant], f"{source}: tasks.{task}.{variant}")
        if base_dir is not None and not Path(spec.model).is_absolute():
            candidate = (base_dir / spec.model).resolve()
            if candidate.is_dir():
                spec = ModelSpec(str(candidate), spec.labels, spec.revision)
        specs[variant] = spec
    return TaskPair(task=task, int8=int8, **specs)


def _distillation(raw: object, source: str, base_dir: Path | None) -> DistillationLink | None:
    if raw is None:
        return None
    hub_repo = raw.get("hub_repo") if isinstance(raw, dict) else None
    if (not isinstance(raw, dict) or not (hub_repo or raw.get("output_dir")) or
            (hub_repo is not None and (not isinstance(hub_repo, str) or hub_repo.count("/") != 1))):
        raise ConfigError(f"{source}: 'distillation' needs hub_repo: OWNER/NAME, output_dir: DIR, or both.")
    unknown = set(raw) - {"hub_repo", "output_dir"}
    if unknown:
        raise ConfigError(f"{source}: distillation has unknown key(s) {sorted(unknown)}; allowed: hub_repo, "
                          "output_dir.")
    output_dir = raw.get("output_dir")
    if output_dir is not None:
        path = Path(str(output_dir)).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        output_dir = str(path)
    return DistillationLink(hub_repo=hub_repo, output_dir=output_dir)


def load_config(path: str | os.PathLike | None = None, strict: bool = True) -> AppConfig:
    """Read a pairs file; with no path, the shipped defaults (pairs.yaml)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if not path.is_file():
        raise ConfigError(f"Config file {path} not found; pass --config with a YAML file like pairs.yaml.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).".replace("\n", " ")) from exc
    return parse_config(raw, source=str(path), base_dir=path.resolve().parent, strict=strict)
