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


def evaluate(model: Any, data: str = "mnist", backend: str = "auto") -> dict[str, Any]:
    """A model on a test split: what `edgedigits eval` reports, as a library call.

    Args:
        model: a `.onnx`, `.tflite` or `.keras` path, or a loaded Classifier.
        data: as for train ("mnist", "mnist-5k", an .npz or an IDX folder); only its test
            split is read.
        backend: for a path, "auto" or the backend its suffix implies.

    Returns:
        classification_report's fields (accuracy, loss, per-class accuracy, confusion matrix)
        plus "model", "backend", "device" and "data".

    Raises:
        ModelError / DataError (EdgeDigitsError): an unusable model or data, in one line.
    """
    from edgedigits.data import load_test_split
    from edgedigits.export.parity import predict_in_batches
    from edgedigits.runtime import load_classifier

    clf = model if hasattr(model, "predict_proba") else load_classifier(model, backend=backend)
    split = load_test_split(data)  # never the training arrays
    report = classification_report(split.y_test, predict_in_batches(clf, split.x_test))
    return {
        "model": str(clf.path),
        "backend": clf.backend,
        "device": clf.device,
        "data": split.name,
        **report,
    }
