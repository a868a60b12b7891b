"""A visitor's upload turned into the files of one distillation job, or one clear refusal.

Everything the CLI would refuse later (no text or label column, labels the teacher does not know, one
class only, a text file for a classifier) is refused here, before a process starts, so the visitor
reads it at once; the files written are what `python -m demo.distill distill` reads.
"""

from __future__ import annotations

import csv
import errno
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from demo.core.errors import UserError
from demo.data.files import (
    LABELLED_SUFFIXES,
    ReadLimits,
    file_format,
    read_labelled,
    read_texts,
)
from demo.measuring.evaluation import label_index
from demo.models.loading import LoadedModel
from demo.serving.training.jobs import TrainingLimits

VALIDATION_SHARE = 0.1  # of the visitor's rows, held out to score the student (at least MIN_VALIDATION)
MIN_VALIDATION, MAX_VALIDATION = 20, 872  # rows; 872 is SST-2's validation set, enough to read 1 point
MIN_ROWS = 40  # fewer cannot fill a validation set and a training set
MAJORITY_WARNING = 0.70  # a class holding more of the rows than this is said before Start
MIN_CLASS_ROWS = 20  # a class with fewer rows is said before Start: too few to learn it or to score it


class JobDataError(UserError, ValueError):
    """An upload a job cannot learn from; the message says what to change."""


@dataclass(frozen=True)
class JobFiles:
    """What the job's command line points at, and what the panel reports before it starts."""

    train: Path
    validation: Path | None
    transfer: Path | None
    rows: int  # training rows written (after the cap)
    validation_rows: int
    sampled_from: int  # rows in the upload
    objective: str  # "classification" or "mlm"
    sample_texts: tuple[str, ...] = ()  # up to 256 training texts: their length prices a step, and can they vary
    transfer_rows: int = 0  # unlabelled texts written to transfer.txt
    balance_warnings: tuple[str, ...] = ()  # what the class balance may mislead about (said before Start too)


def _write_rows(path: Path, rows: list[tuple[str, object]]) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    except OSError as exc:
        raise JobDataError(_disk_message(exc)) from None


def _disk_message(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the server's disk is full, so the job's files could not be written; nothing was started."
    return f"the job's files could not be written ({exc.strerror or exc}); nothing was started."


def _check_suffix(path: str, objective: str) -> None:
    kind = file_format(Path(path))
    if objective == "mlm" and kind != "txt":
        raise JobDataError("fill-mask distillation learns from plain text: upload a .txt file, one text per line "
                           "(a labelled file is for the sentiment and emotion tasks).")
    if objective == "classification" and Path(path).suffix.lower() not in LABELLED_SUFFIXES:
        raise JobDataError("a classifier is distilled from labelled rows: upload a CSV, TSV or JSON file with a text "
                           "and a label column (a .txt file is for fill-mask).")


@dataclass(frozen=True)
class ClassBalance:
    """How the rows of a labelled upload fall into the teacher's classes, said before Start."""

    counts: dict[str, int]  # the teacher's class name -> rows, in the teacher's class order

    @classmethod
    def of(cls, teacher: LoadedModel, labels: list[str]) -> ClassBalance:
        """Rows per teacher class; labels the teacher lacks: one sentence naming its classes (LabelMismatch)."""
        mapping = label_index(teacher, labels)
        counts = Counter(mapping[label] for label in labels)
        return cls({teacher.id2label[i]: counts.get(i, 0) for i in sorted(teacher.id2label)})

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def warnings(self) -> list[str]:
        """What would make the student, or its score, mislead: one class dominating, a class nearly absent."""
        said = []
        name, most = max(self.counts.items(), key=lambda kv: kv[1])
        if self.rows and most / self.rows > MAJORITY_WARNING:
            said.append(f"{most / self.rows:.0%} of the rows are {name}: a student that always answers {name} "
                        f"would score {most / self.rows:.0%}; balance the file (e.g. rows drawn at random, not the "
                        "top of a file sorted by label).")
        few = [f"{label} ({n})" for label, n in self.counts.items() if n < MIN_CLASS_ROWS]
        if few:
            said.append(f"fewer than {MIN_CLASS_ROWS} rows of {', '.join(few)}: too few to learn the class or to "
                        "score it on the held-out tenth.")
        return said

    def markdown(self) -> str:
        shares = " · ".join(f"{label} {n:,} ({n / max(self.rows, 1):.0%})" for label, n in self.counts.items())
        return "\n".join([f"**Your rows**: {shares}.", *(f"⚠️ {w}" for w in self.warnings())])


def split(labels: list, seed: int = 0) -> tuple[list[int], list[int]]:
    """Seeded random (train, validation) row indices, the validation rows stratified by class: each class
    holds out its own share (at least one row), so a rare class is scored too."""
    n = len(labels)
    n_val = min(MAX_VALIDATION, max(MIN_VALIDATION, round(n * VALIDATION_SHARE)))
    by_class: dict = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    rng, held = random.Random(seed), []
    for label in sorted(by_class, key=str):
        members = by_class[label]
        rng.shuffle(members)
        held += members[:max(1, round(len(members) * n_val / n))]
    first = set(held)
    rest = [i for i in range(n) if i not in first]
    rng.shuffle(held)
    rng.shuffle(rest)
    held = held[:n_val] if len(held) > n_val else held + rest[:n_val - len(held)]  # rounding: exactly n_val rows
    chosen = set(held)
    return [i for i in range(n) if i not in chosen], sorted(held)


def prepare_classification(teacher: LoadedModel, upload: str, max_rows: int, folder: Path, max_bytes: int,
                           limits: ReadLimits) -> tuple[Path, Path, list[str], int, int, int, tuple[str, ...]]:
    """train.csv and validation.csv with the teacher's class ids as labels; (paths, the first 256 training
    texts, rows, val rows, total, class-balance warnings)."""
    data = read_labelled(upload, max_bytes=max_bytes, limits=limits)
    mapping = label_index(teacher, data.labels)  # unknown labels: one sentence naming the teacher's
    balance = ClassBalance.of(teacher, data.labels)
    if sum(n > 0 for n in balance.counts.values()) < 2:
        raise JobDataError(f"every row of the file has the label {data.labels[0]!r}: a student cannot learn to "
                           "tell classes apart from one class; add rows of the other classes.")
    if len(data) < MIN_ROWS:
        raise JobDataError(f"the file has {len(data)} rows; give at least {MIN_ROWS} (some are held out to score "
                           "the student).")
    train_idx, val_idx = split([mapping[label] for label in data.labels])
    train_idx = sorted(random.Random(1).sample(train_idx, max_rows)) if len(train_idx) > max_rows else train_idx
    rows = len(train_idx)
    train, validation = folder / "train.csv", folder / "validation.csv"
    _write_rows(train, [(data.texts[i], mapping[data.labels[i]]) for i in train_idx])
    _write_rows(validation, [(data.texts[i], mapping[data.labels[i]]) for i in val_idx])
    return (train, validation, [data.texts[i] for i in train_idx[:256]], rows, len(val_idx), len(data),
            tuple(balance.warnings()))


def prepare_texts(upload: str, max_rows: int, folder: Path, max_bytes: int,
                  limits: ReadLimits) -> tuple[Path, int, int]:
    """texts.txt for a fill-mask job (the CLI holds a slice out itself)."""
    data = read_texts(upload, max_bytes=max_bytes, limits=limits)
    texts = [" ".join(t.split()) for t in data.texts]
    if len(texts) < MIN_ROWS:
        raise JobDataError(f"the file has {len(texts)} texts; give at least {MIN_ROWS}.")
    kept = random.Random(1).sample(texts, max_rows) if len(texts) > max_rows else texts
    path = folder / "texts.txt"
    try:
        path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    except OSError as exc:
        raise JobDataError(_disk_message(exc)) from None
    return path, len(kept), len(texts)


def prepare(teacher: LoadedModel, objective: str, upload: str | None, transfer: str | None, max_rows: int,
            folder: Path, caps: TrainingLimits) -> JobFiles:
    """The job's input files in folder (max_rows of the upload at most); a JobDataError (or DataError) for
    anything it could not learn from. caps: the app's upload size and read limits."""
    max_bytes, limits = caps.max_upload_bytes, caps.read
    if not upload:
        raise JobDataError("upload a file to distil from first.")
    for path in (upload, transfer):
        if path and Path(path).is_file() and Path(path).stat().st_size > max_bytes:
            raise JobDataError(f"{Path(path).name} is {Path(path).stat().st_size / 1e6:.1f} MB; this app takes files "
                               f"up to {max_bytes / 1e6:.0f} MB for training (its operator sets the cap).")
    _check_suffix(upload, objective)
    if objective == "mlm":
        train, rows, total = prepare_texts(upload, max_rows, folder, max_bytes, limits)
        validation, val_rows, sample, warnings = None, 0, [], ()
    else:
        train, validation, sample, rows, val_rows, total, warnings = prepare_classification(
            teacher, upload, max_rows, folder, max_bytes, limits)
    transfer_path, transfer_rows = None, 0
    if transfer:
        texts = read_texts(transfer, max_bytes=max_bytes, limits=limits)
        transfer_path, kept = folder / "transfer.txt", [" ".join(t.split()) for t in texts.texts[:max_rows * 5]]
        transfer_rows = len(kept)
        try:
            transfer_path.write_text("\n".join(kept) + "\n", encoding="utf-8")
        except OSError as exc:
            raise JobDataError(_disk_message(exc)) from None
    return JobFiles(train, validation, transfer_path, rows, val_rows, total, objective, tuple(sample), transfer_rows,
                    warnings)

