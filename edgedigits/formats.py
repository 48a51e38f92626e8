"""The model files edgedigits reads, defined once: suffix -> the runtime backend that runs it.

Edge side (no TensorFlow). The runtime picks a backend by suffix from here, the CLI offers
these backends, and the export registry (export/__init__.py) checks at import that every
variant's file name has the suffix of the format it names, so an export can never write a
file the runtime would not know how to load.
"""

from __future__ import annotations

SUFFIX_BACKEND = {".onnx": "onnx", ".tflite": "tflite", ".keras": "keras"}
BACKENDS = ("auto", *SUFFIX_BACKEND.values())  # "auto": by suffix
EDGE_BACKENDS = tuple(b for b in BACKENDS if b != "keras")  # what an edge install can run
