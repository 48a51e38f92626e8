"""One capture interface over a webcam index, a video file, an image, a folder of images or the demo."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edgedigits.errors import EdgeDigitsError

MAX_PIXELS = 50_000_000  # default --max-pixels: an 8000x6000 photo is 48 megapixels
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif"}


SKIPPED = np.zeros((0, 0, 3), np.uint8)  # a frame a source could not read (see Source.error)


class Source:
    """Iterate BGR uint8 frames; `live` sources (webcams) may stop delivering at any time."""

    name: str
    live: bool = False
    still: bool = False  # photos and scans: each frame read whole, not at a frame rate
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
                raise EdgeDigitsError(
                    f"no camera at index {target}; plug one in, or pass --source VIDEO|IMAGE|FOLDER|demo"
                )
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


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, BMP or PNM header, without decoding; None for other
    formats (OpenCV's own limit, 2^30 pixels, then applies)."""
    with open(path, "rb") as fh:
        head = fh.read(256 * 1024)  # a JPEG's size follows its EXIF block (at most 64 KB)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if head[:2] == b"BM" and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return abs(width), abs(height)
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(head)
    if head[:2] in (b"P2", b"P3", b"P5", b"P6"):
        words = [w for line in head.split(b"\n")[:8] for w in line.split(b"#")[0].split()]
        if len(words) >= 3 and words[1].isdigit() and words[2].isdigit():
            return int(words[1]), int(words[2])
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(head):
        if head[i] != 0xFF:
            i += 1
            continue
        marker = head[i + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:  # fill, TEM, RSTn, SOI
            i += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            height, width = struct.unpack(">HH", head[i + 5 : i + 9])
            return width, height
        i += 2 + struct.unpack(">H", head[i + 2 : i + 4])[0]
    return None


def too_large(path: Path, max_pixels: int) -> str | None:
    """Why an image is refused before decoding (its header declares too many pixels), or None."""
    size = image_size(path)
    if size is None or size[0] * size[1] <= max_pixels:
        return None
    return (
        f"{size[0]}x{size[1]} = {size[0] * size[1] / 1e6:.0f} megapixels, over the "
        f"{max_pixels / 1e6:g}-megapixel limit (--max-pixels)"
    )


class ImageSource(Source):
    """One image, or every image of a folder in sorted name order."""

    still = True

    def __init__(self, paths: list[Path], name: str, max_pixels: int = MAX_PIXELS) -> None:
        self.paths, self.name, self.max_pixels = paths, name, max_pixels
        self.fps = 1.0

    def frames(self) -> Iterator[np.ndarray]:
        """A folder's unreadable image comes as SKIPPED (with `error` set), not as the end."""
        for path in self.paths:
            self.current = path.name
            refused = too_large(path, self.max_pixels)
            frame = None if refused else cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                self.error = refused or "not a readable image"
                if len(self.paths) == 1:
                    raise EdgeDigitsError(f"{path}: {self.error}")
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


def open_source(spec: str, loop_demo: bool = False, max_pixels: int = MAX_PIXELS) -> Source:
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
        return ImageSource(images, str(path), max_pixels)
    if not path.is_file():
        raise EdgeDigitsError(
            f"{spec}: no such file or folder; pass a webcam index, a video, an "
            "image, a folder of images or demo"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        refused = too_large(path, max_pixels)
        if refused:
            raise EdgeDigitsError(f"{path}: {refused}")
        if cv2.imread(str(path), cv2.IMREAD_COLOR) is None:
            raise EdgeDigitsError(f"{path}: not a readable image")
        return ImageSource([path], str(path), max_pixels)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return CaptureSource(str(path), str(path))
    raise EdgeDigitsError(
        f"{path}: unknown source type; expected an image ({'/'.join(sorted(IMAGE_SUFFIXES))}) or a video"
    )
