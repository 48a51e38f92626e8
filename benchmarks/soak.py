"""Issue 6 soak: the camera loop over 20,000 frames, headless, writing JSONL.

Targets: RSS grows by less than 10 MB (from frame 1,000 on, after warm-up), and the
per-frame time does not drift (median of the last 2,000 frames within 20% of the
first 2,000 after warm-up).

    python benchmarks/soak.py [--frames 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save, target  # noqa: E402

from edgedigits.bench import memory_mb  # noqa: E402
from edgedigits.camera.loop import CameraConfig, run_camera  # noqa: E402
from edgedigits.camera.sources import Source  # noqa: E402
from edgedigits.camera.synth import demo_frames  # noqa: E402


class Cycling(Source):
    """The demo clip on repeat, sampling this process's RSS every 500 frames."""

    name = "demo (cycling)"

    def __init__(self, n: int) -> None:
        self.clip = [f for f, _ in demo_frames(90)]
        self.n, self.rss = n, []

    def frames(self):
        for i in range(self.n):
            if i % 500 == 0:
                self.rss.append((i, memory_mb("VmRSS")))
            yield self.clip[i % len(self.clip)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=20_000)
    n = parser.parse_args().frames
    out = Path(tempfile.mkdtemp()) / "soak.jsonl"
    source = Cycling(n)
    summary = run_camera(
        CameraConfig(source="demo", headless=True, output_jsonl=str(out)), log=print, source=source
    )
    totals = np.array([json.loads(line)["ms"]["total"] for line in out.read_text().splitlines()])
    rss = dict(source.rss)
    growth = rss[max(rss)] - rss[1000]
    first, last = np.median(totals[1000:3000]), np.median(totals[-2000:])
    print(
        f"info  {summary['frames']} frames; RSS {rss[1000]:.1f} -> {rss[max(rss)]:.1f} MB "
        f"(peak {memory_mb():.1f}); median ms/frame {first:.2f} -> {last:.2f}"
    )
    targets = [
        target("frames processed", summary["frames"], ">=", n),
        target("RSS growth after warm-up", growth, "<=", 10, " MB"),
        target("per-frame time drift (last / first median)", last / first, "<=", 1.2, "x"),
    ]
    save(
        "soak",
        {
            "frames": n,
            "rss_mb": source.rss,
            "median_ms_first": first,
            "median_ms_last": last,
            "targets": targets,
        },
    )


if __name__ == "__main__":
    main()
