"""Read the digits of images through a running Triton Inference Server.

    edgedigits export runs/<run> --format triton --out served
    tritonserver --model-repository served/triton          # on the serving machine
    python examples/triton_client.py page.png --url localhost:8000

edgedigits finds the digits on this machine (segmentation is cheap: numpy and OpenCV); every
crop of a frame goes to the server in ONE request, [crops, 28, 28] float32, which Triton's
dynamic batching merges with other clients' requests. Needs `pip install "tritonclient[http]"`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from edgedigits.contract import INPUT_NAME, NUM_CLASSES, OUTPUT_NAME

MODEL = "edgedigits"  # the name export --format triton gives the model


def triton_classifier(client: Any, model: str = MODEL) -> Callable[[np.ndarray], np.ndarray]:
    """A classify function for edgedigits' segmentation that asks the server: float32
    [N, 28, 28] -> probabilities [N, 10], one request per call."""
    import tritonclient.http as httpclient

    def classify(images: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(images, dtype=np.float32)
        request = httpclient.InferInput(INPUT_NAME, list(batch.shape), "FP32")
        request.set_data_from_numpy(batch)
        result = client.infer(model, inputs=[request], outputs=[httpclient.InferRequestedOutput(OUTPUT_NAME)])
        proba = np.asarray(result.as_numpy(OUTPUT_NAME), np.float32)
        if proba.shape != (len(batch), NUM_CLASSES):
            raise RuntimeError(
                f"{model} answered shape {proba.shape}, expected ({len(batch)}, {NUM_CLASSES})"
            )
        return proba

    return classify


def read_page(path: str, classify: Callable[[np.ndarray], np.ndarray], min_confidence: float) -> list[dict]:
    """The digits of one image, read by `classify` (touching digits split as the camera does)."""
    import cv2

    from edgedigits.camera.split import detect

    frame = cv2.imread(path, cv2.IMREAD_COLOR)
    if frame is None:
        raise FileNotFoundError(f"{path}: not a readable image")
    found = []
    for det in detect(frame, classify):
        if det.proba is not None and float(det.proba.max()) >= min_confidence:
            found.append(
                {
                    "label": int(det.proba.argmax()),
                    "confidence": round(float(det.proba.max()), 4),
                    "box": list(det.box),
                }
            )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--url", default="localhost:8000", help="the server's HTTP endpoint")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--min-confidence", type=float, default=0.5)
    args = parser.parse_args(argv)
    try:
        import tritonclient.http as httpclient
    except ImportError:
        print('error: needs the Triton client: pip install "tritonclient[http]"', file=sys.stderr)
        return 2
    client = httpclient.InferenceServerClient(args.url)
    try:
        ready = client.is_model_ready(args.model)
    except Exception as exc:  # connection refused, DNS, timeout: one line
        print(
            f"error: no Triton server at {args.url} ({exc}); "
            "start tritonserver --model-repository OUT/triton",
            file=sys.stderr,
        )
        return 1
    if not ready:
        print(f"error: {args.url} does not serve a ready model {args.model!r}", file=sys.stderr)
        return 1
    classify = triton_classifier(client, args.model)
    for path in args.images:
        try:
            digits = read_page(path, classify, args.min_confidence)
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{path}: {''.join(str(d['label']) for d in digits) or '(no digits)'}")
        for d in digits:
            print(f"  {d['label']} {d['confidence']:.2f} at {d['box']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
