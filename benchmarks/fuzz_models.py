"""Issue 6, at volume: corrupt every exported variant many times and classify each outcome.

For each of `--cases` mutations per file (truncation at a random offset, or 1-15 random
bit flips), load it with load_classifier:
  rejected  a one-line ModelError (the goal for anything that matters)
  harmless  it loads and agrees >= 99% with the intact file on the real test digits
  HARMFUL   it loads but changes more than 1% of the predictions (must be 0)

    python benchmarks/fuzz_models.py --run RUN_DIR [--cases 150]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save, target  # noqa: E402

from edgedigits.data import load_dataset  # noqa: E402
from edgedigits.errors import ModelError  # noqa: E402
from edgedigits.export import EXPORTERS  # noqa: E402
from edgedigits.runtime import load_classifier  # noqa: E402

VARIANTS = tuple(v.filename for v in EXPORTERS.values())


def mutate(data: bytes, rng: np.random.Generator, i: int) -> bytes:
    b = bytearray(data)
    if i % 2 == 0:
        return bytes(b[: int(rng.integers(1, len(b)))])
    for _ in range(int(rng.integers(1, 16))):
        b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, help="a run directory with export/")
    parser.add_argument("--cases", type=int, default=150)
    args = parser.parse_args()
    run = Path(args.run)
    config = json.loads((run / "config.json").read_text())
    data = load_dataset(config["data"])
    scratch = Path(tempfile.mkdtemp())
    counts, targets = {}, []
    for name in VARIANTS:
        source = run / "export" / name
        reference = load_classifier(source).predict(data.x_test)
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        tally = {"rejected": 0, "harmless": 0, "harmful": 0}
        for i in range(args.cases):
            path = scratch / f"{i}-{name}"
            path.write_bytes(mutate(source.read_bytes(), rng, i))
            try:
                clf = load_classifier(path)
            except ModelError as exc:
                assert "\n" not in str(exc)
                tally["rejected"] += 1
                continue
            agree = (clf.predict(data.x_test) == reference).mean()
            tally["harmless" if agree >= 0.99 else "harmful"] += 1
        counts[name] = tally
        print(f"info  {name}: {args.cases} cases, {tally}")
        targets.append(target(f"{name}: harmful corruptions that loaded", tally["harmful"], "<=", 0))
    save(
        "fuzz_models",
        {
            "run": str(run),
            "data": data.name,
            "cases_per_file": args.cases,
            "counts": counts,
            "targets": targets,
        },
    )


if __name__ == "__main__":
    main()
