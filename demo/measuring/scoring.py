"""Classification figures shared by the distillation run and the evaluator: one definition each."""

from __future__ import annotations

from collections.abc import Sequence


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    if not labels:
        return float("nan")
    return sum(p == y for p, y in zip(predictions, labels)) / len(labels)


def agreement(a: Sequence[int], b: Sequence[int]) -> float:
    """Share of examples on which two models predict the same class."""
    return accuracy(a, b)


def macro_f1(predictions: Sequence[int], labels: Sequence[int], num_classes: int | None = None) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels or predictions.

    (scikit-learn's default for average="macro": a class absent from both contributes nothing.)
    """
    classes = (sorted(set(labels) | set(predictions)) if num_classes is None else
        [c for c in range(num_classes) if c in set(labels) | set(predictions)])
    if not classes:
        return float("nan")
    scores = []
    for c in classes:
        tp = sum(p == c and y == c for p, y in zip(predictions, labels))
        fp = sum(p == c and y != c for p, y in zip(predictions, labels))
        fn = sum(p != c and y == c for p, y in zip(predictions, labels))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / len(scores)


def confusion_matrix(predictions: Sequence[int], labels: Sequence[int], num_classes: int) -> list[list[int]]:
    """rows = gold label, columns = prediction."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for p, y in zip(predictions, labels):
        matrix[y][p] += 1
    return matrix
