"""Proof that an export agrees with its Keras source, on the whole test split.

Tolerances by quantization (probabilities are compared element-wise):
  none  max |dp| <= 1e-5 and argmax agreement 100%
  fp16  max |dp| <= 1e-2 and accuracy within 0.1 point of Keras
  int8  accuracy within 0.5 point of Keras and agreement >= 99%
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

TOLERANCES: dict[str, dict[str, float]] = {
    "none": {"max_abs_diff": 1e-5, "min_agreement": 1.0},
    "fp16": {"max_abs_diff": 1e-2, "max_accuracy_drop": 0.001},
    "int8": {"max_accuracy_drop": 0.005, "min_agreement": 0.99},
}


@dataclass
class ParityRow:
    file: str
    quantization: str  # "none", "fp16" or "int8"
    size_kb: float
    accuracy: float
    reference_accuracy: float  # the Keras model's, same images
    max_abs_diff: float  # max over images and classes of |p_export - p_keras|
    agreement: float  # fraction of images with the same argmax
    n: int
    passed: bool
    failures: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def predict_in_batches(classifier, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    """float32 [N, 10] from any Classifier, in chunks to bound memory."""
    return np.concatenate([classifier.predict_proba(x[i : i + batch]) for i in range(0, len(x), batch)])


def compare(
    file: Path, name: str, quantization: str, proba: np.ndarray, reference: np.ndarray, y_true: np.ndarray
) -> ParityRow:
    """Score `proba` (export) against `reference` (Keras) under TOLERANCES[quantization]."""
    tol = TOLERANCES[quantization]
    pred, ref_pred = proba.argmax(1), reference.argmax(1)
    acc, ref_acc = float((pred == y_true).mean()), float((ref_pred == y_true).mean())
    diff = float(np.abs(proba.astype(np.float64) - reference).max())
    agreement = float((pred == ref_pred).mean())
    failures = []
    if "max_abs_diff" in tol and not diff <= tol["max_abs_diff"]:
        failures.append(f"max |dp| {diff:.2e} > {tol['max_abs_diff']:.0e}")
    if "min_agreement" in tol and agreement < tol["min_agreement"]:
        failures.append(f"agreement {agreement:.2%} < {tol['min_agreement']:.0%}")
    if "max_accuracy_drop" in tol and ref_acc - acc > tol["max_accuracy_drop"]:
        failures.append(
            f"accuracy {acc:.2%} more than {tol['max_accuracy_drop']:.1%} below Keras {ref_acc:.2%}"
        )
    return ParityRow(
        name,
        quantization,
        round(file.stat().st_size / 1024, 1),
        acc,
        ref_acc,
        diff,
        agreement,
        len(y_true),
        not failures,
        failures,
    )


def format_table(rows: list[ParityRow]) -> str:
    head = f"{'file':<20} {'size KB':>8} {'accuracy':>9} {'max |dp|':>9} {'agree':>8}  result"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.file:<20} {r.size_kb:>8.1f} {r.accuracy:>9.2%} {r.max_abs_diff:>9.1e} "
            f"{r.agreement:>8.2%}  {'PASS' if r.passed else 'FAIL: ' + '; '.join(r.failures)}"
        )
    return "\n".join(lines)
