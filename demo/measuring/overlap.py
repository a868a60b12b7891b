"""Contamination: how many of the rows a model is scored on it was trained on.

A teacher fine-tuned on SST-2's training file and scored on rows drawn from the same file is being asked
what it has seen; its score then says little. Every run of this project records its training files in its
metrics.json (`args.train_file`); the rows are compared by a hash of their text (lower-cased, whitespace
collapsed), never kept or shown. The evaluation report and the student's card say the counts.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from demo.data.files import TEXT_COLUMNS, DataError, obvious_column, read_rows


def text_key(text: str) -> str:
    return hashlib.sha1(" ".join(str(text).lower().split()).encode("utf-8")).hexdigest()


def keys(texts: Iterable[str]) -> set[str]:
    return {text_key(t) for t in texts}


@dataclass
class Overlap:
    """Rows of the scored set also in a model's training data, per model ("teacher", "student")."""

    rows: int  # rows scored
    overlapping: dict[str, int] = field(default_factory=dict)  # model -> scored rows it was trained on
    unknown: dict[str, str] = field(default_factory=dict)  # model -> why it could not be checked

    def to_dict(self) -> dict:
        return asdict(self)

    def sentences(self) -> list[str]:
        """What a report or card says: one sentence per model checked or not."""
        said = [(f"{n:,} of the {self.rows:,} scored rows are in the {who}'s own training data: on those it is "
                 "recalling, not generalising; its score here overstates it." if n else
                 f"None of the {self.rows:,} scored rows is in the {who}'s training data.")
                for who, n in self.overlapping.items()]
        return said + [f"The {who}'s training data could not be checked ({why})." for who, why in self.unknown.items()]


def training_files(model_dir: str | Path) -> list[Path] | str:
    """The training files a run of this project recorded (its metrics.json), as paths that exist here; or why
    there are none to read."""
    metrics = Path(model_dir) / "metrics.json"
    if not metrics.is_file():
        return "it records no training files (no metrics.json of this project)"
    try:
        recorded = json.loads(metrics.read_text(encoding="utf-8")).get("args", {}).get("train_file")
    except (OSError, ValueError):
        return "its metrics.json does not read"
    recorded = recorded if isinstance(recorded, list) else [recorded] if recorded else []
    if not recorded:
        return "it was trained on a Hub dataset, not a file"
    found = []
    for name in recorded:
        candidates = [Path(name), Path(model_dir).parent / name, Path(model_dir) / Path(name).name]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return f"its training file {Path(name).name} is not on this machine"
        found.append(path)
    return found


def file_keys(path: Path) -> frozenset[str]:
    """The hashed texts of a training file, read once per version of it (every evaluation of the same
    model asks again; SST-2's training file is 67,349 rows)."""
    stat = path.stat()
    return _file_keys(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _file_keys(path: str, size: int, mtime_ns: int) -> frozenset[str]:  # size, mtime: a changed file is read again
    columns, rows = read_rows(path)
    column = obvious_column(columns, TEXT_COLUMNS) or columns[0]
    return frozenset(keys(str(r.get(column) or "") for r in rows))


def trained_on(model: str) -> Path | str:
    """What overlap() takes for a model: its folder, or why its training data cannot be known here."""
    return Path(model) if Path(model).is_dir() else "it is a Hub model: its training data is not known here"


def overlap(texts: list[str], trained_on: dict[str, list[str] | str | Path]) -> Overlap:
    """texts: the scored rows; trained_on: model -> its training texts, or a model's folder (its recorded
    files are read), or a sentence saying why it cannot be known."""
    scored, result = keys(texts), Overlap(rows=len(texts))
    for who, source in trained_on.items():
        if isinstance(source, str):
            result.unknown[who] = source
            continue
        if isinstance(source, list):
            seen = keys(source)
        else:
            files = training_files(source)
            if isinstance(files, str):
                result.unknown[who] = files
                continue
            try:
                seen = frozenset().union(*(file_keys(f) for f in files))
            except DataError as exc:
                result.unknown[who] = f"its training file does not read: {exc}"
                continue
        result.overlapping[who] = sum(text_key(t) in seen for t in texts) if scored & seen else 0
    return result
