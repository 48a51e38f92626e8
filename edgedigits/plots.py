"""Every picture edgedigits draws (matplotlib, headless), written atomically: training curves,
the confusion matrix, bench's backend bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgedigits.atomic import atomic_path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_curves(history: list[dict[str, float]], path: Path) -> None:
    """Loss and accuracy per epoch, train and validation, side by side."""
    plt = _pyplot()
    epochs = [int(r["epoch"]) for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, [r[metric] for r in history], marker=".", label=f"train {metric}")
        ax.plot(epochs, [r[f"val_{metric}"] for r in history], marker=".", label=f"val {metric}")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(plt, fig, path)


def save_confusion(report: dict[str, Any], path: Path, title: str) -> None:
    plt = _pyplot()
    cm = report["confusion_matrix"]
    fig, ax = plt.subplots(figsize=(6, 5.4))
    im = ax.imshow(cm, cmap="Blues")
    top = max(max(row) for row in cm) or 1
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            if v:
                ax.text(
                    j,
                    i,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v > top / 2 else "black",
                )
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: accuracy {report['accuracy']:.2%}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    _save(plt, fig, path)


def save_bars(panels: list[tuple[str, dict[str, float]]], path: Path) -> None:
    """Side-by-side log-scale horizontal bars, one panel per (title, {name: value})."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (title, values) in zip(axes[0], panels, strict=True):
        names = list(values)
        ax.barh(names, [values[n] for n in names], color="tab:blue")
        ax.set_xscale("log")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3, which="both")
    _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
