"""The camera loop: capture -> segment -> one batched classify -> track -> overlay/outputs.

No TensorFlow here: numpy, OpenCV and the runtime's Classifier only.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgedigits.assets import bundled_model
from edgedigits.atomic import check_writable, is_stream, open_stream, temp_name
from edgedigits.camera.read import read_digits
from edgedigits.camera.segment import SegmentConfig, group_numbers, ious, similarity
from edgedigits.camera.sources import MAX_PIXELS, Source, open_source
from edgedigits.camera.split import SplitMemory
from edgedigits.errors import EdgeDigitsError, OptionError, first_line

WINDOW = "edgedigits camera (q or Esc quits)"


@dataclass
class CameraConfig:
    model: str | None = None  # None: the bundled model.onnx
    # a still image's cut pieces are read by the model and this one too (read_digits' `second`):
    # None: the shipped second.onnx with the bundled model, none with another; "none": none
    second_model: str | None = None
    source: str = "0"  # webcam index, video, image, folder or "demo"
    headless: bool = False  # no window
    output_jsonl: str | None = None  # one JSON object per frame
    output_video: str | None = None  # annotated frames
    # detections below this are dropped; chosen by benchmarks/camera_real.py: from 0 to 0.7 the
    # false detections stay flat on every set, above 0.5 correct readings are lost (README)
    min_confidence: float = 0.5
    max_frames: int | None = None
    backend: str = "auto"  # auto, onnx or tflite
    threads: int | None = None
    smoothing: float = 0.4  # weight of the newest frame in each track's running probabilities
    max_pixels: int = MAX_PIXELS  # images declaring more are refused before decoding


# ----------------------------------------------------------------------------- tracking


SAME_DIGIT = 0.7  # correlation of two 28x28 inputs above which they show the same digit
# (measured on synthetic video: the same digit in the next frame >= 0.70, median 0.97;
# two MNIST digits of different labels: 99th percentile 0.63)


@dataclass
class Track:
    box: tuple[int, int, int, int]
    proba: np.ndarray  # running average of the class probabilities, [10]
    image: np.ndarray  # the last 28x28 input, to tell when the digit under the box changes
    misses: int = 0


@dataclass
class Tracker:
    """Match boxes frame to frame by IoU; average each track's probabilities (EMA) only while
    it shows the same digit. A new digit in the same place starts afresh at once, with its
    own confidence: two digits are never blended."""

    alpha: float = 0.4
    max_misses: int = 3
    tracks: list[Track] = field(default_factory=list)
    splits: SplitMemory = field(default_factory=SplitMemory)  # how the last frame cut its wide blobs

    def update(
        self, boxes: list[tuple[int, int, int, int]], proba: np.ndarray, images: list[np.ndarray]
    ) -> np.ndarray:
        """Return smoothed probabilities [N, 10] for this frame's boxes and inputs [28, 28]."""
        smoothed = np.array(proba, dtype=np.float32, copy=True)
        overlap = ious(np.reshape(boxes, (-1, 4)), np.reshape([t.box for t in self.tracks], (-1, 4)))
        free = np.ones(len(self.tracks), bool)  # the tracks no box of this frame took yet
        for i, box in enumerate(boxes):
            best = int(np.argmax(np.where(free, overlap[i], -1.0))) if free.any() else -1
            if best < 0 or overlap[i, best] <= 0.3:
                self.tracks.append(Track(box, proba[i].copy(), images[i]))
                continue
            track = self.tracks[best]
            free[best] = False
            if similarity(images[i], track.image) >= SAME_DIGIT:
                track.proba = (1 - self.alpha) * track.proba + self.alpha * proba[i]
            else:  # the scene changed under this box
                track.proba = proba[i].copy()
            track.box, track.image, track.misses = box, images[i], 0
            smoothed[i] = track.proba
        for t in np.flatnonzero(free).tolist():
            self.tracks[t].misses += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.max_misses]
        return smoothed


# ----------------------------------------------------------------------------- one frame


def process_frame(
    frame: np.ndarray,
    classifier: Any,
    tracker: Tracker | None,
    min_confidence: float,
    seg: SegmentConfig | None = None,
    second: Any = None,
) -> dict[str, Any]:
    """Segment, classify (one batched call; a second for the pieces of unsure wide blobs),
    smooth, filter, group into numbers. ms: segment (pixels to blobs), classify (crops,
    splits and the model). `second`: read_digits' second model for a still's cut pieces."""
    timings: dict[str, float] = {}
    live = tracker is not None and not (seg is not None and seg.still)  # a stream, not photos
    memory = tracker.splits if live else None
    detections = read_digits(
        frame, model=classifier, config=seg, timings=timings, memory=memory, second=second
    )
    proba = np.stack([d.proba for d in detections]) if detections else np.zeros((0, 10), np.float32)
    if tracker is not None:
        proba = tracker.update([d.box for d in detections], proba, [d.image for d in detections])
    digits, kept = [], []
    for det, p in zip(detections, proba, strict=True):
        label, conf = int(p.argmax()), float(p.max())
        if conf >= min_confidence:
            digits.append({"label": label, "confidence": round(conf, 4), "box": list(det.box)})
            kept.append(det)
    numbers = group_numbers([tuple(d["box"]) for d in digits], [d["label"] for d in digits])
    return {
        "digits": digits,
        "numbers": numbers,
        "inputs": [d.image for d in kept],
        "ms": {"segment": timings["gray"] + timings["ink"] + timings["boxes"], "classify": timings["read"]},
    }


def timed_frame(
    frame: np.ndarray,
    classifier: Any,
    tracker: Tracker | None,
    min_confidence: float,
    started: float | None = None,
    seg: SegmentConfig | None = None,
    second: Any = None,
) -> dict[str, Any]:
    """process_frame plus the per-frame timing every caller reports (the loop, the pipeline,
    bench and the benchmarks): ms["capture"] from `started` (a perf_counter taken before the
    frame was fetched; None: no capture) to the call, ms["total"] from `started` to the end."""
    called = time.perf_counter()
    started = called if started is None else started
    result = process_frame(frame, classifier, tracker, min_confidence, seg, second)
    result["ms"]["capture"] = (called - started) * 1e3
    result["ms"]["total"] = (time.perf_counter() - started) * 1e3
    return result


# ----------------------------------------------------------------------------- overlay


def draw_overlay(frame: np.ndarray, result: dict[str, Any], fps: float) -> np.ndarray:
    """Boxes coloured by confidence (red 0.5 -> green 1.0), "7 0.98", thumbnails, numbers, timings."""
    out = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    for d in result["digits"]:
        x, y, w, h = d["box"]
        g = float(np.clip((d["confidence"] - 0.5) * 2, 0, 1))
        color = (0, int(255 * g), int(255 * (1 - g)))
        cv2.rectangle(out, (x, y), (x + w, y + h), color, 2)
        cv2.putText(
            out,
            f"{d['label']} {d['confidence']:.2f}",
            (x, max(12, y - 5)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            color,
            1,
            cv2.LINE_AA,
        )
    for n in result["numbers"]:
        if len(n["value"]) > 1:
            x, y, w, h = n["box"]
            cv2.rectangle(out, (x - 4, y - 4), (x + w + 4, y + h + 4), (255, 160, 0), 1)
            cv2.putText(
                out, n["value"], (x, y + h + 22), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 160, 0), 2, cv2.LINE_AA
            )
    thumbs = result["inputs"][: max(0, out.shape[1] // 44)]
    for i, img in enumerate(thumbs):  # the exact 28x28 model inputs, 1.5x
        t = cv2.resize((img * 255).astype(np.uint8), (42, 42), interpolation=cv2.INTER_NEAREST)
        y0, x0 = out.shape[0] - 44, 2 + i * 44
        if y0 >= 0:
            out[y0 : y0 + 42, x0 : x0 + 42] = t[:, :, None]
    ms = result["ms"]
    text = (
        f"{fps:5.1f} FPS  capture {ms.get('capture', 0):.1f}  segment {ms['segment']:.1f}  "
        f"classify {ms['classify']:.1f}  total {ms.get('total', 0):.1f} ms"
    )
    cv2.rectangle(out, (0, 0), (min(out.shape[1], 8 + 7 * len(text)), 20), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


# ----------------------------------------------------------------------------- the loop


def run_camera(
    config: CameraConfig, log: Callable[[str], None] = print, source: Source | None = None
) -> dict[str, Any]:
    """Run the loop until the source ends, --max-frames, or q/Esc; return a summary.

    `source` overrides `config.source` with a ready Source (tests, soak runs).

    Raises:
        EdgeDigitsError/ModelError: bad source, model or output path (one line).
    """
    model, classifier, second, source = _set_up(config, source)
    partials: list[Path] = []  # what a failed run wrote, kept beside the untouched outputs
    with _naming_partials(partials), contextlib.ExitStack() as stack:
        stack.callback(source.close)
        outputs = _Outputs.open(config, source.fps, stack, partials)
        frames, ended = _loop(source, classifier, second, config, outputs, log)
    if source.live and frames == 0 and ended != "failed":
        raise EdgeDigitsError(f"{source.name} delivered no frames; is another program using it?")
    if source.live and ended == "source":
        log(f"{source.name} stopped delivering frames; ended cleanly after {frames} frames")
    return {
        "frames": frames,
        "model": str(model),
        "second_model": _second_name(model, second),
        "backend": classifier.backend,
        "device": classifier.device,
        "jsonl": config.output_jsonl,
        "video": config.output_video,
    }


def _set_up(config: CameraConfig, source: Source | None) -> tuple[Path, Any, Any, Source]:
    """Everything that can fail before the first frame: flags, output paths, the display,
    the models and the source, in that order (the cheap checks first). The second model is
    read_digits' `second`: None (the shipped one with the bundled model), False or a Classifier."""
    from edgedigits.runtime import load_classifier

    if not 0.0 <= config.min_confidence <= 1.0:
        raise OptionError("min_confidence", f"must be within 0-1, got {config.min_confidence}")
    for option, target in (("output_jsonl", config.output_jsonl), ("output_video", config.output_video)):
        if target:
            check_writable(target, option)
    if not config.headless and not display_available():
        raise OptionError(
            "headless",
            "is needed: no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset); "
            "results go to {0}/{1}",
            "output_jsonl",
            "output_video",
        )
    model = Path(config.model) if config.model else bundled_model()
    classifier = load_classifier(model, backend=config.backend, threads=config.threads)
    second: Any = None
    if config.second_model == "none":
        second = False
    elif config.second_model:
        second = load_classifier(Path(config.second_model), backend=config.backend, threads=config.threads)
    source = source or open_source(config.source, loop_demo=not config.headless, max_pixels=config.max_pixels)
    return model, classifier, second, source


def _second_name(model: Path, second: Any) -> str | None:
    """The second model a still's cut pieces are read with (_set_up's `second`), or None."""
    from edgedigits.assets import is_bundled, second_model

    if second is None:
        return str(second_model()) if is_bundled(model) else None
    return None if second is False else str(second.path)


@dataclass
class _Outputs:
    """Where each frame goes: JSON lines, an annotated video, a window (any of them)."""

    jsonl: Any  # a text file, or None
    video: _VideoOut | None
    show: bool

    @classmethod
    def open(
        cls, config: CameraConfig, fps: float, stack: contextlib.ExitStack, partials: list[Path]
    ) -> _Outputs:
        """Open the outputs on `stack`: each is completed (or kept as partial) when it unwinds."""
        jsonl = (
            stack.enter_context(_atomic_lines(config.output_jsonl, partials)) if config.output_jsonl else None
        )
        video = _VideoOut(config.output_video, fps, partials) if config.output_video else None
        if video:
            stack.push(video.finish)
        if not config.headless:
            from edgedigits.quiet import silenced

            with silenced(2):  # OpenCV's bundled Qt complains about its empty font folder
                cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
            stack.callback(cv2.destroyAllWindows)
        return cls(jsonl, video, not config.headless)

    def skipped(self, index: int, name: str | None, error: str | None) -> None:
        if self.jsonl:
            self.jsonl.write(json.dumps({"frame": index, "source": name, "error": error}) + "\n")

    def frame(
        self, index: int, frame: np.ndarray, result: dict[str, Any], fps: float, name: str | None
    ) -> bool:
        """Write one frame everywhere; True when the window asks to quit (q or Esc)."""
        if self.jsonl:
            self.jsonl.write(json.dumps(_record(index, result, name)) + "\n")
        annotated = draw_overlay(frame, result, fps) if self.video or self.show else None
        if self.video:
            self.video.write(annotated)
        if self.show:
            cv2.imshow(WINDOW, annotated)
            return cv2.waitKey(1) & 0xFF in (ord("q"), 27)
        return False


def _loop(
    source: Source,
    classifier: Any,
    second: Any,
    config: CameraConfig,
    outputs: _Outputs,
    log: Callable[[str], None],
) -> tuple[int, str]:
    """Frames until the source ends ("source"), --max-frames ("max"), q/Esc ("quit") or the
    device fails mid-stream ("failed"); returns (frames in every output, how it ended)."""
    tracker = Tracker(alpha=config.smoothing)
    seg = SegmentConfig(still=True) if source.still else None  # a photo is read whole
    stream: Iterator[np.ndarray] = source.frames()
    frames, fps, previous = 0, 0.0, 0.0
    try:
        while config.max_frames is None or frames < config.max_frames:
            t0 = time.perf_counter()
            if frames:  # frames delivered per second, display and waiting included
                fps = _smoothed_rate(fps, t0 - previous)
            previous = t0
            frame = next(stream, None)
            if frame is None:
                return frames, "source"
            if frame.size == 0:  # SKIPPED: an unreadable image in a folder
                log(f"{source.current}: {source.error}; skipped")
                outputs.skipped(frames, source.current, source.error)
                frames += 1
                continue
            result = timed_frame(
                frame, classifier, tracker, config.min_confidence, started=t0, seg=seg, second=second
            )
            quit_key = outputs.frame(frames, frame, result, fps, source.current)
            frames += 1  # this frame is in every output now
            if quit_key:
                return frames, "quit"
    except cv2.error as exc:  # a device that vanishes mid-stream
        reason = str(exc).strip().splitlines()[-1]
        log(f"the source stopped delivering frames ({reason}); ending after {frames} frames")
        return frames, "failed"
    return frames, "max"


@contextlib.contextmanager
def _naming_partials(partials: list[Path]) -> Iterator[None]:
    """A run that fails after writing output ends in one line naming the partial files."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        if not partials:
            raise
        cause = (
            f"{exc.filename}: {exc.strerror}"
            if isinstance(exc, OSError) and exc.strerror
            else first_line(exc)
        )
        kept = ", ".join(str(p) for p in partials)
        raise EdgeDigitsError(
            f"{cause}; the earlier outputs are unchanged, what this run wrote before it failed is in {kept}"
        ) from exc


def display_available() -> bool:
    """Can a window open here? On Linux, only with an X or Wayland display (or a Qt platform
    chosen by QT_QPA_PLATFORM); without one OpenCV's Qt aborts the process with no message."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def _smoothed_rate(fps: float, interval: float) -> float:
    """Running frames-per-second from the interval between two frames (EMA, 10% new)."""
    rate = 1.0 / max(interval, 1e-6)
    return rate if fps == 0.0 else 0.9 * fps + 0.1 * rate


def _record(index: int, result: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    ms = {k: round(result["ms"][k], 3) for k in ("capture", "segment", "classify", "total")}
    record = {"frame": index, "ms": ms, "digits": result["digits"], "numbers": result["numbers"]}
    if source is not None:  # image and folder sources: which file this frame is
        record["source"] = source
    return record


def partial_name(final: Path) -> Path:
    """Where a failed run's output goes, beside the untouched final file: c.partial.jsonl."""
    return final.with_name(f"{final.stem}.partial{final.suffix}")


def _settle(tmp: Path, final: Path, failed: BaseException | None, partials: list[Path]) -> None:
    """A complete or interrupted run (Ctrl-C, SIGTERM, SIGHUP) moves its output into place;
    a failed one keeps it beside the final file, which stays as it was."""
    if failed is None or isinstance(failed, KeyboardInterrupt):
        os.replace(tmp, final)
    else:
        os.replace(tmp, partial_name(final))
        partials.append(partial_name(final))


@contextlib.contextmanager
def _atomic_lines(path: str, partials: list[Path]) -> Iterator[Any]:
    """Write lines to a temp file; at the end, complete or interrupted, move it into place;
    on a failure keep it as the partial file (`partials` gets its name). A stream ('-', a
    FIFO, a device) is written in place instead."""
    if is_stream(path):  # '-', /dev/stdout, a FIFO...: each line goes out as it is written
        with open_stream(path) as fh:
            yield fh
        return
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(temp_name(final.name))
        fh = open(tmp, "w", encoding="utf-8")  # noqa: SIM115  (closed below)
    except OSError as exc:
        raise OptionError("output_jsonl", f"{path}: cannot write ({exc.strerror})") from exc
    failed: BaseException | None = None
    try:
        yield fh
    except BaseException as exc:
        failed = exc
        raise
    finally:
        with contextlib.suppress(OSError):  # a full disk may refuse the last buffered lines
            fh.close()
        _settle(tmp, final, failed, partials)


class _VideoOut:
    def __init__(self, path: str, fps: float, partials: list[Path]) -> None:
        self.final = Path(path)
        self.partials = partials
        self.tmp = self.final.with_name(temp_name(self.final.name))
        self.fps = max(1.0, min(fps, 60.0))
        self.writer: Any = None
        if not self.final.parent.is_dir():
            raise OptionError("output_video", f"{path}: folder {self.final.parent} does not exist")
        if self.final.suffix.lower() not in (".mp4", ".avi"):
            raise OptionError(
                "output_video",
                f"{path}: write a .mp4 or .avi file "
                f"({self.final.suffix or 'no suffix'} would hold the wrong format)",
            )

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.final.suffix.lower() == ".mp4" else "MJPG"))
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, frame.shape[1::-1])
            if not self.writer.isOpened():
                raise OptionError(
                    "output_video", f"{self.final}: cannot encode this format; use .mp4 or .avi"
                )
        self.writer.write(frame)

    def finish(self, exc_type: Any = None, exc: BaseException | None = None, tb: Any = None) -> None:
        if self.writer is not None:
            self.writer.release()
            if self.tmp.exists() and self.tmp.stat().st_size > 0:
                _settle(self.tmp, self.final, exc, self.partials)


def main_summary(summary: dict[str, Any]) -> str:
    outputs = [f"{k} {summary[k]}" for k in ("jsonl", "video") if summary[k]]
    second = summary.get("second_model")
    return (
        f"{summary['frames']} frames with {Path(summary['model']).name} "
        f"({summary['backend']} on {summary['device']})"
        + (f", cut pieces of stills also {Path(second).name}" if second else "")
        + ("; wrote " + ", ".join(outputs) if outputs else "")
    )
