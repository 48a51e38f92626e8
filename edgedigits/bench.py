"""Latency and throughput of every backend, measured in one process and one run.

Backends (those whose file/package is present):
  keras.predict   the seed's way (model.predict)      keras.call   model(x) directly
  tflite[.fp16|.int8]  LiteRT via edgedigits          onnx[.int8]  onnxruntime via edgedigits
  onnx.bare       a bare InferenceSession.run on model.onnx (the wrapper's overhead reference)
  onnx.cuda       model.onnx on CUDAExecutionProvider, when onnxruntime-gpu provides it
  numpy           a plain numpy forward pass of the same weights (the floor of "no runtime");
                  the seed MLP only
GFLOP/s counts the model's own multiply-adds per image (its metadata's macs_per_image, or
its Keras layers); int8 rows are integer operations (GOP/s).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedigits.export import EXPORTERS

Predict = Callable[[np.ndarray], Any]
# bench's name for each export variant ("onnx.int8"), from the export registry
EXPORTS = {key.replace("_", "."): variant for key, variant in EXPORTERS.items()}
FLOAT_FIRST = sorted(EXPORTS, key=lambda k: EXPORTS[k].quantization != "none")  # floats, then the rest


@dataclass
class BenchConfig:
    model_dir: str  # a run dir (model.keras + export/) or a folder of exported files
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32, 1024])
    threads: list[int] = field(default_factory=lambda: [1, 2])
    seconds: float = 0.5  # time budget per (backend, batch, threads) after warm-up
    cold_start: bool = True  # also time a fresh process to its first prediction
    camera: bool = True  # also time the camera pipeline per stage on the demo clip


@dataclass
class Row:
    backend: str
    threads: int
    batch: int
    p50_us: float
    p90_us: float
    p99_us: float
    images_per_s: float
    gflops: float  # achieved: 2 x the model's multiply-adds per image / second (nan: unknown)
    calls: int


def find_models(model_dir: Path) -> dict[str, Path]:
    """Backend name -> file, from a run dir (model.keras, export/*) or a folder of exports."""
    folders = [model_dir, model_dir / "export"]
    names = {"keras": "model.keras", **{key: v.filename for key, v in EXPORTS.items()}}
    found = {}
    for key, name in names.items():
        path = next((f / name for f in folders if (f / name).is_file()), None)
        if path:
            found[key] = path
    return found


def numpy_forward(weights: list[np.ndarray]) -> Predict:
    """The MLP in numpy: x [N, 28, 28] -> softmax [N, 10]."""
    w1, b1, w2, b2, w3, b3 = (np.ascontiguousarray(w, dtype=np.float32) for w in weights)

    def forward(x: np.ndarray) -> np.ndarray:
        h = np.maximum(x.reshape(len(x), -1) @ w1 + b1, 0)  # (N, 300)
        h = np.maximum(h @ w2 + b2, 0)  # (N, 100)
        z = h @ w3 + b3  # (N, 10)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    return forward


def backends(models: dict[str, Path], threads: int) -> dict[str, Callable[[], Predict]]:
    """Backend name -> a factory of its predict callable, for this thread count.

    Factories, so each backend is built, measured and released alone: an idle
    onnxruntime session keeps its threads spinning for a while, which on a 2-core
    machine would slow whichever backend is measured next.
    """
    from edgedigits.runtime import load_classifier

    out: dict[str, Callable[[], Predict]] = {}
    if "keras" in models and _has("tensorflow"):  # an edge install measures the exports only
        out["keras.predict"] = lambda: _keras(models["keras"], "predict")
        out["keras.call"] = lambda: _keras(models["keras"], "call")
        if _is_seed_mlp(models["keras"]):
            out["numpy"] = lambda: _keras(models["keras"], "numpy")
    cpu = ["CPUExecutionProvider"]
    for key, variant in EXPORTS.items():
        if key in models and (variant.format != "tflite" or _has("ai_edge_litert")):
            out[key] = lambda key=key: (
                load_classifier(models[key], threads=threads, providers=cpu).predict_proba
            )
    if "onnx" in models:
        out["onnx.bare"] = lambda: _bare_session(models["onnx"], threads)
        if _has_cuda():
            out["onnx.cuda"] = lambda: (
                load_classifier(models["onnx"], providers=["CUDAExecutionProvider"]).predict_proba
            )
    return out


def skipped(models: dict[str, Path]) -> dict[str, str]:
    """Backends present as files but not measured here, and why."""
    out = {}
    if "keras" in models and not _has("tensorflow"):
        out["keras"] = 'model.keras needs TensorFlow (pip install ".[train]")'
    elif "keras" in models and not _is_seed_mlp(models["keras"]):
        out["numpy"] = "the numpy reference forward is the seed MLP's; this model is another"
    if not _has("ai_edge_litert"):
        for key in (k for k, v in EXPORTS.items() if v.format == "tflite"):
            if key in models:
                out[key] = f'{models[key].name} needs LiteRT (pip install ".[tflite]")'
    return out


def _is_seed_mlp(path: Path) -> bool:
    """Does this .keras hold the seed MLP's weights (784-300-100-10)? Read from the archive."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    return config.get("config", {}).get("name") == "edgedigits_mlp"


def macs_per_image(models: dict[str, Path]) -> int | None:
    """The model's multiply-adds per image: an export's metadata, else its Keras layers."""
    from edgedigits.errors import EdgeDigitsError
    from edgedigits.metadata import read_metadata

    for key in FLOAT_FIRST:
        if key in models:
            try:
                value = read_metadata(models[key]).get("macs_per_image", "")
            except EdgeDigitsError:  # a file bench cannot read has no count: n/a
                value = ""
            if value.isdigit():
                return int(value)
    if "keras" in models and _has("tensorflow"):
        from edgedigits.keras_io import load_keras_model
        from edgedigits.model import count_macs

        return count_macs(load_keras_model(models["keras"]))
    return None


def _rate(row: dict[str, Any], peak: float) -> str:
    """A row's achieved rate: GOP/s for integer (int8) backends, GFLOP/s for the rest, with *
    when above the float32 peak measured on its thread count; n/a when the model's size is
    unknown."""
    value = row["gflops"]
    if value != value:  # NaN: no multiply-add count
        return "n/a"
    unit = "GOP/s" if row["backend"].endswith(".int8") else ""
    return f"{value:.2f}{' ' + unit if unit else ''}{'*' if value > peak else ''}"


def _has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _has(module: str) -> bool:
    """Is `module` installed (without importing it)?"""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # an import hook refused it, or a None entry
        return False


def _keras(path: Path, how: str) -> Predict:
    from edgedigits.keras_io import load_keras_model

    model = load_keras_model(path)
    if how == "predict":
        return lambda x: model.predict(x, verbose=0)
    if how == "call":
        return lambda x: model(x, training=False)
    return numpy_forward(model.get_weights())


def _bare_session(path: Path, threads: int) -> Predict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x})


def time_calls(
    fn: Predict, x: np.ndarray, seconds: float, warmup: int = 5, max_calls: int = 20_000
) -> np.ndarray:
    """Per-call seconds after warm-up, for about `seconds` (at least 5 calls)."""
    for _ in range(warmup):
        fn(x)
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < 5 or (time.perf_counter() < deadline and len(times) < max_calls):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return np.asarray(times)


def measure(
    name: str, fn: Predict, x: np.ndarray, threads: int, seconds: float, macs: int | None = None
) -> Row:
    t = time_calls(fn, x, seconds)
    p50, p90, p99 = np.percentile(t, [50, 90, 99])
    ops = 2 * macs * len(x) / p50 / 1e9 if macs else float("nan")
    return Row(name, threads, len(x), p50 * 1e6, p90 * 1e6, p99 * 1e6, len(x) / p50, ops, len(t))


PEAK = """
import sys, time, numpy as np
a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
for _ in range(3):
    a @ a
best, deadline = float("inf"), time.perf_counter() + float(sys.argv[1])
while time.perf_counter() < deadline:
    t0 = time.perf_counter()
    a @ a
    best = min(best, time.perf_counter() - t0)
print(2 * 1024**3 / best / 1e9)
"""


def peak_gflops(threads: int, seconds: float = 0.5) -> float:
    """This machine's float32 matmul rate on `threads` threads (numpy's BLAS, 1024x1024):
    the best of many runs, in a fresh process whose BLAS is limited to that many threads (a
    running process cannot change it). A row's achieved rate is compared with this."""
    limits = {v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", PEAK, str(seconds)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **limits},
        )
        return float(proc.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return float("nan")


COLD_START = """
import sys, time, numpy as np
def peak_rss_mb():  # memory_mb("VmHWM"), inlined: importing edgedigits.bench would inflate what we measure
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
t0 = time.perf_counter()
from edgedigits.runtime import load_classifier
clf = load_classifier(sys.argv[1])
clf.predict_proba(np.zeros((1, 28, 28), np.float32))
print(time.perf_counter() - t0, peak_rss_mb())
"""


def memory_mb(field: str = "VmHWM") -> float:
    """A memory figure of this process from /proc/self/status, in MB: VmHWM is the peak RSS
    (unlike ru_maxrss it is not inherited across exec), VmRSS the current one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    if field != "VmHWM":
        return float("nan")
    import resource  # not Linux: the nearest figure there is

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cold_start(path: Path) -> dict[str, float]:
    """A fresh Python process to its first prediction: wall seconds and peak RSS (MB)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", COLD_START, str(path)], capture_output=True, text=True, timeout=300
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"seconds": float("nan"), "in_process_seconds": float("nan"), "peak_rss_mb": float("nan")}
    inner, rss = (float(v) for v in proc.stdout.split()[-2:])
    return {"seconds": wall, "in_process_seconds": inner, "peak_rss_mb": rss}


def camera_stages(model: Path, frames: int = 60) -> dict[str, float]:
    """Median ms per stage of the camera pipeline over the demo clip (one thread)."""
    from edgedigits.camera.loop import CameraConfig, Tracker, timed_frame
    from edgedigits.camera.synth import demo_frames
    from edgedigits.runtime import load_classifier

    clf = load_classifier(model, threads=1)
    tracker, stages = Tracker(), {"segment": [], "classify": [], "total": []}
    for frame, _ in demo_frames(frames):
        ms = timed_frame(frame, clf, tracker, CameraConfig().min_confidence)["ms"]
        for stage in stages:
            stages[stage].append(ms[stage])
    return {k: float(np.median(v)) for k, v in stages.items()}


def run_bench(config: BenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure everything; return a JSON-ready report."""
    from edgedigits.errors import EdgeDigitsError

    model_dir = Path(config.model_dir)
    models = find_models(model_dir)
    if not models:
        raise EdgeDigitsError(
            f"{model_dir}: no model.keras or exported models; run "
            "`edgedigits train` and `edgedigits export` first"
        )
    macs = macs_per_image(models)
    rng = np.random.default_rng(0)
    rows: list[Row] = []
    plan = [(t, b) for t in config.threads for b in config.batch_sizes]
    # TensorFlow's thread pools are fixed at start-up: Keras is measured at the first count only
    table = {
        t: {
            name: build
            for name, build in backends(models, t).items()
            if t == config.threads[0] or not name.startswith("keras")
        }
        for t in config.threads
    }
    keras = ["keras"] if "keras" in models and _has("tensorflow") else []
    cold = [k for k in models if k != "keras"] + keras if config.cold_start else []
    total = sum(len(table[t]) for t, _ in plan) + len(cold) + int(config.camera)
    done = 0
    for threads, batch in plan:
        x = rng.random((batch, 28, 28), dtype=np.float32)
        for name, build in table[threads].items():
            if progress:
                progress(_bar(done, total, f"{name} threads={threads} batch={batch}"))
            done += 1
            fn = build()
            rows.append(measure(name, fn, x, threads, config.seconds, macs))
            del fn
            gc.collect()  # release the session (and its spinning threads) before the next one
    report: dict[str, Any] = {
        "machine": machine(),
        "peak_gflops": {str(t): peak_gflops(t) for t in sorted({threads for threads, _ in plan})},
        "config": asdict(config),
        "files_kb": {k: round(p.stat().st_size / 1024, 1) for k, p in models.items()},
        "macs_per_image": macs,
        "skipped": skipped(models),
        "rows": [asdict(r) for r in rows],
    }
    if config.cold_start:
        report["cold_start"] = {}
        for key in cold:
            if progress:
                progress(_bar(done, total, f"cold start {key}"))
            done += 1
            report["cold_start"][key] = cold_start(models[key])
    if config.camera and "onnx" in models:
        if progress:
            progress(_bar(done, total, "camera pipeline on the demo clip"))
        report["camera_ms"] = camera_stages(models["onnx"])
    return report


def _bar(done: int, total: int, what: str, width: int = 24) -> str:
    filled = width * done // max(total, 1)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what}"


ISA_FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX-INT8",
    "asimd": "NEON",
    "asimddp": "NEON dot-product",
}


def machine() -> dict[str, Any]:
    """The CPU (model, cores, the ISA extensions that decide int8 speed) and runtime versions:
    every benchmark figure depends on them."""
    from importlib.metadata import PackageNotFoundError, version

    info: dict[str, str] = {}  # the first core's fields
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = info.get("model name") or platform.processor() or platform.machine()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    versions = {}
    for package in ("onnxruntime", "ai-edge-litert", "tensorflow", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    import cv2  # opencv-python, -headless or -contrib: the module knows its version, pip names vary

    versions["opencv"] = cv2.__version__
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.system(),
        "isa": [name for f, name in ISA_FLAGS.items() if f in flags],
        "versions": versions,
    }


def machine_line(m: dict[str, Any] | None = None) -> str:
    """One line naming the machine, for every report."""
    m = m or machine()
    v = m.get("versions", {})
    return (
        f"{m['cpu']}, {m['cores']} cores, ISA {', '.join(m.get('isa', [])) or 'baseline'}; "
        f"Python {m['python']}, onnxruntime {v.get('onnxruntime', '?')}, "
        f"LiteRT {v.get('ai-edge-litert', '?')}, TensorFlow {v.get('tensorflow', '?')}, "
        f"numpy {v.get('numpy', '?')}, OpenCV {v.get('opencv', v.get('opencv-python', '?'))}"
    )


def to_markdown(report: dict[str, Any]) -> str:
    macs = report.get("macs_per_image")
    peaks = report["peak_gflops"]
    lines = [
        f"Machine: {machine_line(report['machine'])}; float32 matmul peak (numpy, best of many runs) "
        + ", ".join(f"{p:.0f} GFLOP/s on {t} thread(s)" for t, p in peaks.items())
        + ". Model: "
        + (f"{macs:,} multiply-adds per image." if macs else "multiply-adds unknown (no metadata)."),
        "",
        "| backend | threads | batch | p50 us | p90 us | p99 us | images/s | GFLOP/s (int8: GOP/s) "
        "| file KB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    files = report["files_kb"]
    above = False
    for r in report["rows"]:
        kb = files.get(r["backend"].replace(".bare", "").replace(".predict", "").replace(".call", ""), "")
        kb = files.get("keras", "") if r["backend"] == "numpy" else kb
        rate = _rate(r, peaks.get(str(r["threads"]), float("nan")))
        above = above or rate.endswith("*")
        lines.append(
            f"| {r['backend']} | {r['threads']} | {r['batch']} | {r['p50_us']:,.1f} | "
            f"{r['p90_us']:,.1f} | {r['p99_us']:,.1f} | {r['images_per_s']:,.0f} | {rate} | {kb} |"
        )
    if above:
        lines.append(
            "\n\\* above the float32 matmul peak measured on the same threads: integer kernels "
            "(VNNI) do more operations per cycle than float32, and onnxruntime's kernels can beat "
            "numpy's BLAS."
        )
    for key, why in report.get("skipped", {}).items():
        lines.append(f"\nSkipped {key}: {why}.")
    if report.get("cold_start"):
        lines += [
            "",
            "| backend | cold start s (process) | first prediction s (in process) | peak RSS MB |",
            "|---|---:|---:|---:|",
        ]
        for key, c in report["cold_start"].items():
            lines.append(
                f"| {key} | {c['seconds']:.2f} | {c['in_process_seconds']:.2f} | {c['peak_rss_mb']:.0f} |"
            )
    if report.get("camera_ms"):
        c = report["camera_ms"]
        lines += [
            "",
            f"Camera pipeline on the demo clip (median ms, 1 thread): segment "
            f"{c['segment']:.2f}, classify {c['classify']:.2f}, total {c['total']:.2f}.",
        ]
    return "\n".join(lines) + "\n"


def save_plot(report: dict[str, Any], path: Path) -> None:
    """Log-scale bars: batch-1 p50 latency and largest-batch throughput per backend."""
    require_plotting()
    from edgedigits.plots import save_bars

    rows = report["rows"]
    t0 = min(r["threads"] for r in rows)
    big = max(r["batch"] for r in rows)
    lat = {r["backend"]: r["p50_us"] for r in rows if r["batch"] == 1 and r["threads"] == t0}
    thr = {r["backend"]: r["images_per_s"] for r in rows if r["batch"] == big and r["threads"] == t0}
    save_bars(
        [(f"batch-1 p50 latency (us), {t0} thread(s)", lat), (f"throughput at batch {big} (images/s)", thr)],
        path,
    )


def require_plotting() -> None:
    """Raise MissingExtraError now, not after a long run, when matplotlib is missing."""
    from edgedigits.errors import MissingExtraError

    if not _has("matplotlib"):
        raise MissingExtraError("--plot", extra="train")


def write_outputs(
    report: dict[str, Any], json_path: str | None, md_path: str | None, plot_path: str | None
) -> None:
    from edgedigits import atomic

    if json_path:
        atomic.write_text(json_path, json.dumps(report, indent=2) + "\n")
    if md_path:
        atomic.write_text(md_path, to_markdown(report))
    if plot_path:
        save_plot(report, Path(plot_path))
