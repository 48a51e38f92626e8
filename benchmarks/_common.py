"""Helpers shared by the benchmark scripts: where results go, how a target is reported."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


def full_mnist(arg: str | None) -> str:
    """The full-MNIST source: an explicit path, ../shared/data/mnist.npz, or Keras's download."""
    if arg:
        return arg
    return str(SHARED_MNIST) if SHARED_MNIST.exists() else "mnist"


def machine() -> str:
    """The CPU (model, cores, ISA) and runtime versions, in one line for every benchmark."""
    from edgedigits.bench import machine_line

    return machine_line()


def target(name: str, value: float, op: str, bound: float, unit: str = "") -> dict:
    value = float(value)
    ok = bool(value >= bound if op == ">=" else value <= bound)
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {value:.4g}{unit} (target {op} {bound:g}{unit})")
    return {"name": name, "value": value, "target": f"{op} {bound}", "unit": unit, "pass": ok}


def save(name: str, payload: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    lines = [f"# {name}", "", "| target | measured | bound | result |", "|---|---:|---|---|"]
    for t in payload["targets"]:
        lines.append(
            f"| {t['name']} | {t['value']:.4g}{t['unit']} | {t['target']}{t['unit']} | "
            f"{'PASS' if t['pass'] else 'FAIL'} |"
        )
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {path}", file=sys.stderr)
