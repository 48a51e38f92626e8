"""The training-time distortions: reproducible, in range, and still digits a model can read."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from edgedigits.augment import ink, long_tail, non_digits, slivers  # noqa: E402


@pytest.fixture(scope="module")
def batch(mnist5k):
    return tf.constant(mnist5k.x_test[:64]), mnist5k.y_test[:64]


def test_ink_is_reproducible_by_seed_and_in_range(batch):
    x, _ = batch
    a = ink(x, tf.constant([3, 7])).numpy()
    b = ink(x, tf.constant([3, 7])).numpy()
    c = ink(x, tf.constant([4, 7])).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.shape == (64, 28, 28) and a.min() >= 0.0 and a.max() <= 1.0
    assert np.abs(a - x.numpy()).mean() > 0.02  # it really distorts


def test_ink_keeps_digits_readable(batch):
    """The bundled model still reads most distorted digits: the distortions are handwriting-
    sized, not noise."""
    from edgedigits.assets import bundled_model
    from edgedigits.runtime import load_classifier

    x, y = batch
    clf = load_classifier(bundled_model())
    clean = (clf.predict(x.numpy()) == y).mean()
    distorted = (clf.predict(ink(x, tf.constant([1, 2])).numpy()) == y).mean()
    assert clean >= 0.95 and distorted >= 0.7  # noise would read ~10%


def test_non_digits_are_two_digits_side_by_side(batch):
    """Each outlier holds the ink of two digits, fitted into 28x28 like a camera crop."""
    x, _ = batch
    pairs = non_digits(x[:32], x[32:], tf.constant([5, 6])).numpy()
    assert pairs.shape == (32, 28, 28) and pairs.min() >= 0.0 and pairs.max() <= 1.0
    cols = (pairs > 0.3).any(axis=1)
    wide = cols.sum(axis=1)  # inked columns: a pair spans most of the 20-px box's width
    rows = (pairs > 0.3).any(axis=2).sum(axis=1)
    assert np.median(wide) >= 12 and np.median(rows) < np.median(wide)  # wider than tall


def test_a_share_of_non_digits_really_touch(batch, monkeypatch):
    """TOUCHING of the pairs are placed by their ink, the second's first inked column into the
    first's last, so no empty column parts them: the camera meets digits written joined, and
    placed by their 28x28 frames almost every pair keeps a gap (4% here touch by chance)."""
    import edgedigits.augment as augment

    x, _ = batch

    def joined(pairs: np.ndarray) -> float:
        cols = [np.flatnonzero(c) for c in (pairs > 0.3).any(axis=1)]
        return float(np.mean([len(c) > 0 and c[-1] - c[0] + 1 == len(c) for c in cols]))

    pairs = non_digits(x[:32], x[32:], tf.constant([5, 6])).numpy()
    monkeypatch.setattr(augment, "TOUCHING", 0.0)
    apart = non_digits(x[:32], x[32:], tf.constant([5, 6])).numpy()
    assert joined(pairs) >= joined(apart) + 0.1, (joined(pairs), joined(apart))


def test_slivers_add_a_stroke_end_of_the_neighbour_not_the_neighbour(batch, monkeypatch):
    """A cut piece where two digits touch: the digit and the end of its neighbour's stroke,
    reproducibly. Wider than the digit alone in a share of the pieces (a sliver too small or
    too tall is none), narrower than the two together in nearly every one; on either side."""
    import edgedigits.augment as augment

    x, _ = batch
    a, b, seed = x[:32], x[32:], tf.constant([5, 6])
    pieces = slivers(a, b, seed).numpy()
    np.testing.assert_array_equal(pieces, slivers(a, b, seed).numpy())
    assert pieces.shape == (32, 28, 28) and pieces.min() >= 0.0 and pieces.max() <= 1.0
    monkeypatch.setattr(augment, "TOUCHING", 1.0)
    pairs = non_digits(a, b, seed).numpy()
    monkeypatch.setattr(augment, "SLIVER", 0.0)
    alone = slivers(a, b, seed).numpy()

    def aspect(images: np.ndarray) -> np.ndarray:
        rows, cols = _ink_box(images)
        return cols / np.maximum(rows, 1)

    changed = np.abs(pieces - alone).max(axis=(1, 2)) > 0.3  # 57% of 256 pieces
    added = aspect(pieces) > aspect(alone) + 0.05  # 34% of 256
    assert changed.mean() >= 0.3 and added.mean() >= 0.1, (changed.mean(), added.mean())
    assert (aspect(pieces) < aspect(pairs)).mean() >= 0.9  # the pairs' rows are cut at 28/20 of 20 px
    # on the right and on the left: the added ink's mean column lies either side of the digit's
    triples = zip(pieces, alone, added, strict=True)
    shift = [_mass_column(p) - _mass_column(q) for p, q, more in triples if more]
    assert min(shift) < -0.15 and max(shift) > 0.15, shift


def _mass_column(image: np.ndarray) -> float:
    return float((image.sum(axis=0) * np.arange(28)).sum() / max(image.sum(), 1e-6))


def _ink_box(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) each image's ink spans."""
    rows = (images > 0.3).any(axis=2).sum(axis=1)
    cols = (images > 0.3).any(axis=1).sum(axis=1)
    return rows, cols


def test_long_tail_gives_a_share_of_digits_a_small_head_over_a_long_stem(batch, monkeypatch):
    """Real 9s and 7s are often written with a small loop over a long tail: stretched below
    their middle and refitted into 20 px as the camera does, digits get narrower and their ink
    stays as tall as MNIST's. LONG_TAIL of them, reproducibly."""
    import edgedigits.augment as augment

    x, _ = batch
    out = long_tail(x, tf.constant([1, 2])).numpy()
    np.testing.assert_array_equal(out, long_tail(x, tf.constant([1, 2])).numpy())
    changed = np.abs(out - x.numpy()).max(axis=(1, 2)) > 0
    assert 0.05 <= changed.mean() <= 0.4  # LONG_TAIL = 0.2 of 64
    monkeypatch.setattr(augment, "LONG_TAIL", 1.0)
    tall = long_tail(x, tf.constant([1, 2])).numpy()
    rows, cols = _ink_box(x.numpy())
    tall_rows, tall_cols = _ink_box(tall)
    assert np.abs(np.median(tall_rows) - np.median(rows)) <= 2  # refitted to MNIST's 20 px
    assert np.median(tall_cols / cols) < 0.8  # narrower
