"""`train --augment ink`: make MNIST look like real pen strokes, on the fly, inside the
XLA-compiled training step (tensors only, so it runs on a GPU when there is one).

Per image, reproducibly from (seed, step): rotation +-15 deg, shear +-0.3, scale 0.8-1.2
on each axis (so the aspect changes too), translation +-3 px, elastic distortion (a
coarse random displacement field), stroke thickness (erode or dilate by a random amount),
blur and sensor noise. One bilinear resampling applies the geometry in one go. Before that,
LONG_TAIL of the images get a long tail (long_tail): real 9s, 7s and 4s are often written with
a small head over a long stem, which MNIST's 20-px fitting leaves 4 px wide.
"""

from __future__ import annotations

import math
from typing import Any

AUGMENTS = ("none", "ink")
TOUCHING = 0.25  # share of the outlier pairs (non_digits) whose inks really touch
# slivers (train --slivers): a neighbour's sliver holds up to this share of its ink and is at
# most SLIVER_TALL of its height. At 0.75 (and with 1s as neighbours) a 1 beside a digit read
# as that digit: touching development pages 92.4% -> 89.3%
SLIVER = 0.3
SLIVER_TALL = 0.5
LONG_TAIL = 0.2  # share of the images whose lower half is stretched (long_tail)
TAIL_STRETCH = (1.5, 4.0)  # how much: at 4 a 9's loop is a fifth of its height


def ink(x: Any, seed: Any) -> Any:
    """x float32 (B, 28, 28) in [0, 1], seed int32 [2] -> augmented (B, 28, 28) in [0, 1]."""
    import tensorflow as tf  # already loaded by training; import_tf inside a traced function upsets autograph

    x = long_tail(x, seed + tf.constant([0, 3571]))
    b = tf.shape(x)[0]

    def uniform(k: int, shape: Any, lo: float, hi: float) -> Any:
        return tf.random.stateless_uniform(
            shape, seed=seed + tf.constant([0, 7919]) * k, minval=lo, maxval=hi
        )

    angle = uniform(1, [b], -15.0, 15.0) * (math.pi / 180.0)
    shear = uniform(2, [b], -0.3, 0.3)
    sx, sy = uniform(3, [b], 0.8, 1.2), uniform(4, [b], 0.8, 1.2)  # so the aspect varies too
    tx, ty = uniform(5, [b], -3.0, 3.0), uniform(6, [b], -3.0, 3.0)
    # output pixel (u, v) around the centre -> input (x, y): the inverse of rotate*shear*scale
    cos, sin = tf.cos(angle), tf.sin(angle)
    a11, a12 = cos / sx, (sin + shear * cos) / sx
    a21, a22 = -sin / sy, (cos - shear * sin) / sy
    grid = tf.range(28, dtype=tf.float32) - 13.5
    v, u = tf.meshgrid(grid, grid, indexing="ij")  # (28, 28) rows, columns
    c = lambda t: t[:, None, None]  # noqa: E731  (B,) -> (B, 1, 1)
    src_x = c(a11) * u + c(a12) * v + 13.5 - c(tx)
    src_y = c(a21) * u + c(a22) * v + 13.5 - c(ty)
    # elastic: a 4x4 field of random shifts, smoothly upsampled, up to ~2.5 px
    coarse = tf.random.stateless_normal([b, 4, 4, 2], seed=seed + tf.constant([0, 104729]))
    field = tf.image.resize(coarse * c(uniform(7, [b], 0.0, 1.5))[..., None], [28, 28])
    out = _bilinear(x, src_y + field[..., 0], src_x + field[..., 1])[..., None]  # (B, 28, 28, 1)
    # stroke thickness: t > 0 thickens toward a 3x3 dilation, t < 0 thins toward an erosion
    t = c(uniform(8, [b], -0.6, 1.0))[..., None]
    dilated = tf.nn.max_pool2d(out, 3, 1, "SAME")
    eroded = -tf.nn.max_pool2d(-out, 3, 1, "SAME")
    out = tf.where(t > 0, out + t * (dilated - out), out - t * (eroded - out))
    # blur: a random mix with a 3x3 Gaussian
    kernel = tf.constant([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])[:, :, None, None] / 16.0
    blurred = tf.nn.conv2d(out, kernel, 1, "SAME")
    mix = c(uniform(9, [b], 0.0, 1.0))[..., None]
    out = out + mix * (blurred - out)
    noise = tf.random.stateless_normal(tf.shape(out), seed=seed + tf.constant([0, 15485863]))
    out = out + noise * c(uniform(10, [b], 0.0, 0.08))[..., None]
    return tf.clip_by_value(out[..., 0], 0.0, 1.0)


def long_tail(x: Any, seed: Any) -> Any:
    """LONG_TAIL of x (B, 28, 28) get the rows below a line near their middle stretched by
    TAIL_STRETCH, then are refitted into 28x28 as normalise_crop would (the ink's longer side
    20 px, centred): a 9 with a small loop over a long stem, a 7 with a long stem, a tall 0.
    Every digit stays itself; the others are returned unchanged."""
    import tensorflow as tf

    b = tf.shape(x)[0]
    u = tf.random.stateless_uniform([b, 3], seed=seed)
    chosen = u[:, 0] < LONG_TAIL
    stretch = TAIL_STRETCH[0] + u[:, 1] * (TAIL_STRETCH[1] - TAIL_STRETCH[0])
    split = 12.0 + 4.0 * u[:, 2]  # MNIST's ink spans rows ~4-23; a 9's loop ends near 14
    rows = 28 + int(14 * (TAIL_STRETCH[1] - 1)) + 1
    r = tf.range(rows, dtype=tf.float32)[None, :, None]  # (1, R, 1)
    c = lambda t: t[:, None, None]  # noqa: E731
    src_y = tf.where(r < c(split), r, c(split) + (r - c(split)) / c(stretch)) + tf.zeros([1, 1, 28])
    src_x = tf.zeros_like(src_y) + tf.range(28, dtype=tf.float32)[None, None, :]
    tall = _bilinear(x, src_y, src_x)  # (B, R, 28)
    top, bottom = _extent(tf.reduce_max(tall, axis=2) > 0.2)
    left, right = _extent(tf.reduce_max(tall, axis=1) > 0.2)
    side = tf.maximum(tf.maximum(bottom - top, right - left) + 1.0, 4.0) * 28.0 / 20.0
    cy, cx = (top + bottom) / 2, (left + right) / 2
    boxes = tf.stack(
        [
            (cy - (side - 1) / 2) / (rows - 1),
            (cx - (side - 1) / 2) / 27.0,
            (cy + (side - 1) / 2) / (rows - 1),
            (cx + (side - 1) / 2) / 27.0,
        ],
        axis=1,
    )
    refit = tf.image.crop_and_resize(tall[..., None], boxes, tf.range(b), [28, 28])[..., 0]
    return tf.where(c(chosen), tf.clip_by_value(refit, 0.0, 1.0), x)


def _extent(mask: Any) -> tuple[Any, Any]:
    """(first, last) True index along axis 1 of a bool (B, L) mask, float32 (B,) each; an
    all-False row gives (0, L - 1)."""
    import tensorflow as tf

    size = tf.cast(tf.shape(mask)[1], tf.float32)
    first = tf.cast(tf.argmax(tf.cast(mask, tf.int32), axis=1), tf.float32)
    last = size - 1.0 - tf.cast(tf.argmax(tf.cast(tf.reverse(mask, [1]), tf.int32), axis=1), tf.float32)
    return first, last


def _bilinear(x: Any, y: Any, xs: Any) -> Any:
    """Sample x (B, 28, 28) at float rows y and columns xs (B, H, W); outside is 0."""
    import tensorflow as tf  # already loaded by training; import_tf inside a traced function upsets autograph

    b = tf.shape(x)[0]
    flat = tf.reshape(x, [-1])
    base = (tf.range(b) * 784)[:, None, None]
    y0, x0 = tf.floor(y), tf.floor(xs)
    wy, wx = y - y0, xs - x0
    y0i, x0i = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)

    def at(yi: Any, xi: Any) -> Any:
        inside = (yi >= 0) & (yi <= 27) & (xi >= 0) & (xi <= 27)
        idx = base + tf.clip_by_value(yi, 0, 27) * 28 + tf.clip_by_value(xi, 0, 27)
        return tf.where(inside, tf.gather(flat, idx), 0.0)

    return (
        (1 - wy) * (1 - wx) * at(y0i, x0i)
        + (1 - wy) * wx * at(y0i, x0i + 1)
        + wy * (1 - wx) * at(y0i + 1, x0i)
        + wy * wx * at(y0i + 1, x0i + 1)
    )


def non_digits(a: Any, b: Any, seed: Any) -> Any:
    """Two digits written touching (a beside b, b 0.55-1.45x a's size and up to a quarter of
    its height higher or lower, overlapping 0-8 px), re-fitted into 28x28 as
    normalise_crop would: what the camera meets when it has not yet split a blob. For outlier
    exposure (trained toward the uniform distribution, so the model's top probability on them
    is low, and the splitter prefers the pieces). a, b: (N, 28, 28) -> (N, 28, 28).

    Cut pieces of one digit are deliberately not used: many are digits in their own right
    (the right stroke of a 4 is a 1), and training them toward "unsure" cost 2 points of accuracy.
    """
    import tensorflow as tf

    canvas = tf.maximum(*_pair(a, b, seed, TOUCHING))
    # the ink's columns, then a square box around it, 28/20 of its longer side (MNIST's margin)
    first, last = _extent(tf.reduce_max(canvas, axis=1) > 0.2)  # of the (N, 56) inked columns
    centre_y = tf.fill(tf.shape(first), 14.0)
    return _refit(canvas, (first + last + 1) / 2, centre_y, tf.maximum(last - first + 1, 20.0))


def slivers(a: Any, b: Any, seed: Any) -> Any:
    """Digit a with a sliver of a neighbour b that touches it, on a's right or left, re-fitted
    into 28x28 by the ink's box as normalise_crop would: b's first columns, holding a random
    share of its ink up to SLIVER, kept when no taller than SLIVER_TALL of b's height (a 1's
    whole stroke is a digit, not a sliver; a taller one leaves a alone). What the splitter's
    cut pieces look like where two digits touch or overlap: the cut runs through the joint and
    leaves a stroke's end of the neighbour. Trained with a's label, so a piece reads as its
    digit, not as what the sliver makes of it. a, b: (N, 28, 28) -> (N, 28, 28)."""
    import tensorflow as tf

    n = tf.shape(a)[0]
    left = tf.random.stateless_uniform([n], seed=seed + tf.constant([0, 5])) < 0.5  # b before a

    def flip(x: Any) -> Any:  # b before a: mirrored, placed, mirrored back
        return tf.where(left[:, None, None], tf.reverse(x, [2]), x)

    a_placed, b_placed = _pair(flip(a), flip(b), seed, 1.0)  # (N, 28, 56) each
    columns = tf.reduce_sum(b_placed, axis=1)  # (N, 56): b's ink per column
    ink = tf.math.cumsum(columns, axis=1) / tf.maximum(tf.reduce_sum(columns, axis=1, keepdims=True), 1e-6)
    share = tf.random.stateless_uniform([n, 1], seed=seed + tf.constant([0, 6]), minval=0.0, maxval=SLIVER)
    sliver = tf.where((ink <= share)[:, None, :], b_placed, 0.0)
    top, bottom = _extent(tf.reduce_max(sliver, axis=2) > 0.2)
    b_top, b_bottom = _extent(tf.reduce_max(b_placed, axis=2) > 0.2)
    short = (bottom - top) <= SLIVER_TALL * (b_bottom - b_top)  # no ink: the whole height, not short
    canvas = flip(tf.maximum(a_placed, tf.where(short[:, None, None], sliver, 0.0)))
    first, last = _extent(tf.reduce_max(canvas, axis=1) > 0.2)
    top, bottom = _extent(tf.reduce_max(canvas, axis=2) > 0.2)
    side = tf.maximum(last - first + 1, bottom - top + 1)
    return _refit(canvas, (first + last + 1) / 2, (top + bottom + 1) / 2, side)


def _pair(a: Any, b: Any, seed: Any, touching: float) -> tuple[Any, Any]:
    """a at columns 0-27 of a (N, 28, 56) canvas, b (0.55-1.45x a's size, up to a quarter of
    its height higher or lower) from column 28 - overlap (0-8 px, by their 28x28 frames); a
    `touching` share of the pairs are placed by their ink instead, b's first inked column 0-3 px
    into a's last, so the two really touch (placed by their frames, most pairs keep a gap).
    -> (a placed, b placed), each (N, 28, 56)."""
    import tensorflow as tf

    n = tf.shape(a)[0]
    overlap = tf.floor(tf.random.stateless_uniform([n], seed=seed, minval=0.0, maxval=9.0))
    # real neighbours differ in size and sit higher or lower (a small 8 beside a long-tailed 7)
    zoom = tf.random.stateless_uniform([n], seed=seed + tf.constant([0, 1]), minval=0.55, maxval=1.45)
    rise = tf.random.stateless_uniform([n], seed=seed + tf.constant([0, 2]), minval=-0.25, maxval=0.25)
    half = 0.5 / zoom
    b = tf.image.crop_and_resize(
        b[..., None],
        tf.stack([0.5 - half + rise, 0.5 - half, 0.5 + half + rise, 0.5 + half], axis=1),
        tf.range(n),
        [28, 28],
    )[..., 0]
    a_last = _extent(tf.reduce_max(a, 1) > 0.2)[1]
    b_first = _extent(tf.reduce_max(b, 1) > 0.2)[0]
    into = tf.floor(tf.random.stateless_uniform([n], seed=seed + tf.constant([0, 3]), minval=0.0, maxval=4.0))
    touches = tf.random.stateless_uniform([n], seed=seed + tf.constant([0, 4])) < touching
    start = tf.where(touches, a_last + 1.0 - into - b_first, 28.0 - overlap)  # (N,)
    cols = tf.range(56, dtype=tf.float32)[None, :]  # (1, 56)
    source = tf.cast(tf.clip_by_value(cols - start[:, None], 0, 55), tf.int32)  # (N, 56)
    b_placed = tf.gather(tf.pad(b, [[0, 0], [0, 0], [0, 28]]), source, batch_dims=1, axis=2)
    b_placed = tf.where((cols >= start[:, None])[:, None, :], b_placed, 0.0)
    return tf.pad(a, [[0, 0], [0, 0], [0, 28]]), b_placed


def _refit(canvas: Any, centre_x: Any, centre_y: Any, side: Any) -> Any:
    """(N, 28, 56) canvas -> (N, 28, 28): a square around (centre_x, centre_y), 28/20 of `side`
    (the ink's longer side in pixels: MNIST's margin), resampled."""
    import tensorflow as tf

    side_px = side * 28.0 / 20.0
    boxes = tf.stack(
        [
            (centre_y - side_px / 2) / 27.0,
            (centre_x - side_px / 2) / 55.0,
            (centre_y + side_px / 2) / 27.0,
            (centre_x + side_px / 2) / 55.0,
        ],
        axis=1,
    )
    out = tf.image.crop_and_resize(canvas[..., None], boxes, tf.range(tf.shape(canvas)[0]), [28, 28])
    return tf.clip_by_value(out[..., 0], 0.0, 1.0)
