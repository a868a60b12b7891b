"""Classification figures shared by the distillation run and the evaluator: one definition each."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    if not labels:
        return float("nan")
    return sum(p == y for p, y in zip(predictions, labels)) / len(labels)


def agreement(a: Sequence[int], b: Sequence[int]) -> float:
    """Share of examples on which two models predict the same class."""
    return accuracy(a, b)


def macro_f1(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels or predictions (scikit-learn's
    average="macro": a class absent from both contributes nothing); NaN for no rows."""
    if not len(labels):
        return float("nan")
    return float(macro_f1_over(np.asarray(predictions), np.asarray(labels)))


def macro_f1_over(pred: np.ndarray, gold: np.ndarray, axis: int = -1) -> np.ndarray:
    """macro_f1 over the last axis, vectorised over leading ones (the bootstrap's resamples): per (re)sample,
    the classes present in either its labels or its predictions."""
    classes = np.union1d(np.unique(pred), np.unique(gold))
    p, g = pred[..., None] == classes, gold[..., None] == classes  # (..., n, C)
    tp, fp, fn = (p & g).sum(-2), (p & ~g).sum(-2), (~p & g).sum(-2)  # (..., C)
    denom = 2 * tp + fp + fn
    present = denom > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(present, 2 * tp / np.maximum(denom, 1), 0.0)
        return f1.sum(-1) / present.sum(-1)


def confusion_matrix(predictions: Sequence[int], labels: Sequence[int], num_classes: int) -> list[list[int]]:
    """rows = gold label, columns = prediction."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for p, y in zip(predictions, labels):
        matrix[y][p] += 1
    return matrix
