"""One capture interface over a webcam index, a video file, an image, a folder of images or the demo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edgedigits.errors import EdgeDigitsError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif"}


SKIPPED = np.zeros((0, 0, 3), np.uint8)  # a frame a source could not read (see Source.error)


class Source:
    """Iterate BGR uint8 frames; `live` sources (webcams) may stop delivering at any time."""

    name: str
    live: bool = False
    fps: float = 30.0
    current: str | None = None  # file name of the frame just delivered (image and folder sources)
    error: str | None = None  # why the frame just delivered is SKIPPED

    def frames(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class CaptureSource(Source):
    """cv2.VideoCapture over a webcam index or a video file."""

    def __init__(self, target: int | str, name: str) -> None:
        from edgedigits.quiet import silenced

        self.name, self.live = name, isinstance(target, int)
        with silenced(2):  # OpenCV logs each backend it tried before giving up
            self.capture = cv2.VideoCapture(target)
        if not self.capture.isOpened():
            self.capture.release()
            if self.live:
                raise EdgeDigitsError(f"no camera at index {target}; plug one in, or pass "
                                      "--source VIDEO|IMAGE|FOLDER|demo")
            raise EdgeDigitsError(f"{target}: cannot open this video (missing codec or corrupt file)")
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0) or 30.0

    def frames(self) -> Iterator[np.ndarray]:
        while True:
            ok, frame = self.capture.read()
            if not ok or frame is None:
                return
            yield frame

    def close(self) -> None:
        self.capture.release()


class ImageSource(Source):
    """One image, or every image of a folder in sorted name order."""

    def __init__(self, paths: list[Path], name: str) -> None:
        self.paths, self.name = paths, name
        self.fps = 1.0

    def frames(self) -> Iterator[np.ndarray]:
        """A folder's unreadable image comes as SKIPPED (with `error` set), not as the end."""
        for path in self.paths:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            self.current = path.name
            if frame is None:
                if len(self.paths) == 1:
                    raise EdgeDigitsError(f"{path}: not a readable image")
                self.error = "not a readable image"
                yield SKIPPED
                continue
            self.error = None
            yield frame


class DemoSource(Source):
    """The deterministic synthetic clip (see synth.demo_frames), once or on repeat."""

    name = "demo"

    def __init__(self, n_frames: int = 90, loop: bool = False) -> None:
        self.n_frames, self.loop = n_frames, loop

    def frames(self) -> Iterator[np.ndarray]:
        from edgedigits.camera.synth import demo_frames

        clip = []
        for frame, _ in demo_frames(self.n_frames):
            clip.append(frame)
            yield frame
        while self.loop:  # replay the rendered frames: same clip, no rendering cost
            yield from clip


def open_source(spec: str, loop_demo: bool = False) -> Source:
    """`0`/`1`... (webcam index), a video, an image, a folder of images, or `demo`
    (on repeat with `loop_demo`, for a window that stays up until q/Esc).

    Raises:
        EdgeDigitsError: no such camera or file, or an unreadable one (one line).
    """
    if spec == "demo":
        return DemoSource(loop=loop_demo)
    if spec.isdigit():
        return CaptureSource(int(spec), f"camera {spec}")
    path = Path(spec).expanduser()
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise EdgeDigitsError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
        return ImageSource(images, str(path))
    if not path.is_file():
        raise EdgeDigitsError(f"{spec}: no such file or folder; pass a webcam index, a video, an "
                              "image, a folder of images or demo")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        if cv2.imread(str(path), cv2.IMREAD_COLOR) is None:
            raise EdgeDigitsError(f"{path}: not a readable image")
        return ImageSource([path], str(path))
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return CaptureSource(str(path), str(path))
    raise EdgeDigitsError(f"{path}: unknown source type; expected an image "
                          f"({'/'.join(sorted(IMAGE_SUFFIXES))}) or a video")
