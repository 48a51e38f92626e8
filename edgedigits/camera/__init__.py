"""Live digit recognition: segment.py (pure functions on arrays) and loop.py (I/O, overlay)."""
