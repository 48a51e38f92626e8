"""Classification metrics in numpy (no TensorFlow), shared by train, eval and parity."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgedigits.data import NUM_CLASSES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """int64 [10, 10]; rows are true labels, columns predictions."""
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def classification_report(y_true: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Accuracy, mean cross-entropy, per-class accuracy and confusion matrix of [N, 10] probabilities."""
    y_true = np.asarray(y_true, dtype=np.int64)
    pred = proba.argmax(axis=1)
    cm = confusion_matrix(y_true, pred)
    support = cm.sum(axis=1)
    per_class = np.divide(np.diag(cm), support, out=np.zeros(NUM_CLASSES), where=support > 0)
    picked = np.clip(proba[np.arange(len(y_true)), y_true].astype(np.float64), 1e-7, 1.0)
    return {
        "accuracy": float((pred == y_true).mean()),
        "loss": float(-np.log(picked).mean()),
        # a class absent from the test split has no accuracy: None (JSON null), not 0
        "per_class_accuracy": {
            str(d): (round(float(a), 6) if support[d] else None) for d, a in enumerate(per_class)
        },
        "confusion_matrix": cm.tolist(),
        "n": int(len(y_true)),
    }


def format_report(report: dict[str, Any]) -> str:
    """Human-readable accuracy, per-class accuracy and confusion matrix."""
    lines = [f"accuracy {report['accuracy']:.4%}  loss {report['loss']:.4f}  (n={report['n']})"]
    lines.append(
        "per class: "
        + "  ".join(
            f"{d}:{'n/a' if a is None else format(a, '.3f')}" for d, a in report["per_class_accuracy"].items()
        )
    )
    lines.append("confusion (rows true, columns predicted):")
    lines.append("      " + "".join(f"{d:>6}" for d in range(NUM_CLASSES)))
    for d, row in enumerate(report["confusion_matrix"]):
        lines.append(f"{d:>6}" + "".join(f"{v:>6}" for v in row))
    return "\n".join(lines)
