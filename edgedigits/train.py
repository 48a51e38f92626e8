"""Fit the seed MLP: run directory, callbacks, resume, Ctrl-C safety, final report.

The seed called `model.fit`; here one epoch is a single XLA-compiled loop over
tensors already in memory (Keras's per-step overhead costs 2-3x on a 2-core CPU),
driven by the seed's own Keras callbacks: TensorBoard and EarlyStopping (patience 5,
restore best), plus an atomic best-only checkpoint in place of ModelCheckpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedigits import __version__, atomic
from edgedigits._tf import import_keras, import_tf
from edgedigits.augment import AUGMENTS
from edgedigits.data import Dataset, load_dataset
from edgedigits.distribute import STRATEGIES, Distribution, make_strategy
from edgedigits.errors import EdgeDigitsError, OptionError, first_line
from edgedigits.metrics import classification_report
from edgedigits.model import ARCHS

HISTORY_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


@dataclass
class TrainConfig:
    data: str = "mnist"  # "mnist", "mnist-5k", an .npz or an IDX folder
    epochs: int = 30  # at most this many epochs (more epochs when resuming)
    batch_size: int = 32
    optimizer: str = "sgd"  # "sgd" (the seed) or "adam"
    learning_rate: float | None = None  # None: model.DEFAULT_LEARNING_RATE (SGD 0.1, Adam 0.001)
    seed: int = 0  # weights init and shuffling; same seed on CPU -> same weights
    patience: int = 5  # EarlyStopping patience on val_loss, as the seed
    shift: int = 0  # augmentation: translate each batch by up to N px (0 = none, the seed)
    augment: str = "none"  # "none" (the seed) or "ink": real-pen distortions (augment.py)
    arch: str = "mlp"  # "mlp" (the seed) or "cnn" (model.py)
    lr_schedule: str = "cosine"  # "cosine" decays to 5% over --epochs; "constant" is the seed
    outliers: float = 0.0  # outlier exposure: this share of each batch again as non-digits
    # (two digits written touching) trained toward uniform probabilities (0 = none, the seed)
    slivers: float = 0.0  # this share of each batch again with a touching neighbour's sliver,
    # keeping its label (augment.slivers: what the splitter's cut pieces look like; 0 = none)
    out: str = "runs"  # parent of the timestamped run directory
    device: str = "auto"  # "auto", "cpu" or "gpu"
    strategy: str = "auto"  # tf.distribute: "auto", "one", "mirrored", "multiworker" (distribute.py)
    devices: str = ""  # mirrored over these (comma-separated, e.g. "GPU:0,GPU:1"); "" = every GPU
    init: str = ""  # start from this .keras model's weights (fine-tuning); "" = fresh weights

    def validate(self) -> None:
        if self.epochs < 1:
            raise OptionError("epochs", f"must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise OptionError("batch_size", f"must be at least 1, got {self.batch_size}")
        if self.optimizer not in ("sgd", "adam"):
            raise OptionError("optimizer", f"must be sgd or adam, got {self.optimizer!r}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise OptionError("learning_rate", f"must be positive, got {self.learning_rate}")
        if not 0 <= self.shift <= 8:
            raise OptionError("shift", f"must be 0-8 pixels, got {self.shift}")
        if self.augment not in AUGMENTS:
            raise OptionError("augment", f"must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise OptionError("lr_schedule", f"must be constant or cosine, got {self.lr_schedule!r}")
        if not 0.0 <= self.outliers <= 1.0:
            raise OptionError("outliers", f"must be within 0-1, got {self.outliers}")
        if not 0.0 <= self.slivers <= 1.0:
            raise OptionError("slivers", f"must be within 0-1, got {self.slivers}")
        if self.arch not in ARCHS:
            raise OptionError("arch", f"must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.device not in ("auto", "cpu", "gpu"):
            raise OptionError("device", f"must be auto, cpu or gpu, got {self.device!r}")
        if self.strategy not in STRATEGIES:
            raise OptionError("strategy", f"must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, Any]
    interrupted: bool
    chief: bool = True  # False: a multiworker task whose copy of the run was discarded


def select_device(choice: str) -> str:
    """Pick the training device before TensorFlow initialises; return its description.

    GPUs get memory growth so TensorFlow does not grab the whole card.
    """
    tf = import_tf("training")
    gpus = tf.config.list_physical_devices("GPU")
    if choice == "cpu" or (choice == "auto" and not gpus):
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        return f"CPU ({os.cpu_count()} cores)"
    if not gpus:
        raise OptionError(
            "device",
            "gpu: TensorFlow sees no GPU (check the CUDA install with "
            '`python -c "import tensorflow as tf; print(tf.config.list_physical_devices())"`), '
            "or train with {0} cpu",
            "device",
        )
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    return f"GPU ({', '.join(g.name for g in gpus)})"


def new_run_dir(out: Path) -> Path:
    """`<out>/<YYYYmmdd-HHMMSS>`, with a -N suffix when two runs start in the same second."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError("out", f"{out}: cannot create it ({exc.strerror})") from exc
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        run_dir = out / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
        except OSError as exc:
            raise OptionError("out", f"{out}: not writable ({exc.strerror})") from exc
    raise OptionError("out", f"{out}: too many runs started at {stamp}")


def train(config: TrainConfig, resume: Path | None = None, log: Callable[[str], None] = print) -> TrainResult:
    """Train (or resume) one run and write every artifact of it.

    Args:
        config: the run's settings; when resuming, the saved run's data, optimizer,
            batch size and seed are used and `config.epochs` more epochs run.
        resume: a run directory holding `checkpoint.keras` to continue from.

    Raises:
        EdgeDigitsError: bad settings, data or run directory (subclasses say which).
    """
    config.validate()
    if resume is not None:
        run_dir, config, history = _open_resume(resume, config)
    else:
        history = []
    device = select_device(config.device)
    dist = make_strategy(config.strategy, config.devices)
    keras = import_keras("training")
    keras.utils.set_random_seed(config.seed + len(history))
    data = load_dataset(config.data)
    global_batch = config.batch_size * dist.replicas
    with dist.strategy.scope():  # the model's variables live on every replica
        if resume is not None:
            model = _load_keras(run_dir / "checkpoint.keras")
        else:
            from edgedigits.model import build_model, compile_model

            # a worker that is not the chief writes to a private folder (TensorFlow's rule)
            out = Path(config.out) if dist.chief else Path(tempfile.mkdtemp(prefix="edgedigits-worker-"))
            run_dir = new_run_dir(out)
            steps = -(-len(data.y_train) // global_batch) * config.epochs
            model = build_model(config.arch)
            if config.init:
                _start_from(model, Path(config.init), config.arch)
            model = compile_model(
                model,
                config.optimizer,
                config.learning_rate,
                decay_steps=steps if config.lr_schedule == "cosine" else None,
            )
    atomic.write_json(
        run_dir / "config.json", {**dataclasses.asdict(config), "edgedigits_version": __version__}
    )
    log(f"run directory: {run_dir}")
    log(f"training on {device}; data {data.name} {data.sizes()}")
    if dist.replicas > 1 or config.strategy != "auto":
        log(
            f"strategy {dist.description}; global batch {global_batch} = {config.batch_size} per replica "
            f"x {dist.replicas}"
        )

    started = time.perf_counter()
    interrupted = _fit(model, data, config, run_dir, history, log, dist)
    train_seconds = time.perf_counter() - started
    if not history:
        raise EdgeDigitsError(f"interrupted before the first epoch finished; {run_dir} holds no model")

    best = _load_keras(run_dir / "checkpoint.keras")  # best val_loss across the whole run
    with atomic.atomic_path(run_dir / "model.keras") as tmp:
        best.save(tmp)
    where = device if dist.replicas == 1 else f"{device}; {dist.description}"
    metrics = _final_metrics(best, data, history, where, train_seconds, interrupted)
    _write_reports(run_dir, history, metrics)
    if not dist.chief:  # its copy of the run is the chief's; only the chief's stays
        shutil.rmtree(run_dir.parent, ignore_errors=True)
    return TrainResult(run_dir, metrics, interrupted, dist.chief)


# ----------------------------------------------------------------------------- the loop


def _fit(
    model: Any,
    data: Dataset,
    config: TrainConfig,
    run_dir: Path,
    history: list[dict[str, float]],
    log: Callable[[str], None],
    dist: Distribution,
) -> bool:
    """Run epochs with the seed's callbacks; return True when stopped by Ctrl-C."""
    keras = import_keras("training")
    tf = import_tf("training")
    best_so_far = min((r["val_loss"] for r in history), default=np.inf)
    callbacks = keras.callbacks.CallbackList(
        [
            keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs"), write_graph=False),
            keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True),
            _atomic_checkpoint(run_dir / "checkpoint.keras", best_so_far),
        ],
        model=model,
    )
    run_epoch = _epoch_function(
        model,
        tf.constant(data.x_train),
        tf.constant(data.y_train.astype(np.int32)),
        config.shift,
        config.augment,
        config.arch,
        round(config.outliers * config.batch_size),
        dist.strategy if dist.replicas > 1 else None,
        round(config.slivers * config.batch_size),
    )
    rng = np.random.default_rng(config.seed + len(history))
    first = len(history)
    model.stop_training = False
    callbacks.on_train_begin()
    try:
        for epoch in range(first, first + config.epochs):
            callbacks.on_epoch_begin(epoch)
            t0 = time.perf_counter()
            # [steps, global batch]: every worker draws the same, each replica takes its slice
            batches = _shuffled_batches(rng, len(data.y_train), config.batch_size * dist.replicas)
            loss_sum, correct = run_epoch(tf.constant(batches), tf.constant(epoch + config.seed))
            n_seen = batches.size
            val = classification_report(data.y_valid, _predict(model, data.x_valid))
            logs = {
                "loss": float(loss_sum) / len(batches),
                "accuracy": float(correct) / n_seen,
                "val_loss": val["loss"],
                "val_accuracy": val["accuracy"],
            }
            callbacks.on_epoch_end(epoch, logs)
            history.append({"epoch": epoch + 1, **logs, "seconds": time.perf_counter() - t0})
            _write_history(run_dir / "history.csv", history)
            log(
                f"epoch {epoch + 1:>3}: loss {logs['loss']:.4f} acc {logs['accuracy']:.4f} "
                f"val_loss {logs['val_loss']:.4f} val_acc {logs['val_accuracy']:.4f} "
                f"({history[-1]['seconds']:.2f} s)"
            )
            if model.stop_training:
                log(f"early stop: val_loss did not improve for {config.patience} epochs")
                break
    except KeyboardInterrupt:
        log("interrupted: keeping the best checkpoint so far")
        return True
    callbacks.on_train_end()
    return False


def _shuffled_batches(rng: np.random.Generator, n: int, batch_size: int) -> np.ndarray:
    """Indices int32 [steps, batch]: a fresh permutation; the last batch is topped up
    from a second permutation so every image is seen and every batch is full."""
    steps = -(-n // batch_size)
    perm = rng.permutation(n)
    extra = rng.permutation(n)[: steps * batch_size - n]
    return np.concatenate([perm, extra]).astype(np.int32).reshape(steps, batch_size)


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    """Probabilities in batches of plain calls: the same under every tf.distribute strategy
    (each worker reads its own copy of the weights), and no Keras predict-loop overhead."""
    from edgedigits.export.parity import predict_in_batches
    from edgedigits.keras_io import KerasClassifier

    return predict_in_batches(KerasClassifier(Path(model.name), model=model), x)


def _epoch_function(
    model: Any,
    x: Any,
    y: Any,
    shift: int,
    augment: str = "none",
    arch: str = "mlp",
    outliers: int = 0,
    strategy: Any = None,
    slivers: int = 0,
) -> Callable[[Any, Any], tuple[Any, Any]]:
    """One epoch: (batches int32 [steps, B], seed) -> (sum of batch losses, # correct).

    The plain MLP runs the whole epoch as one XLA-compiled loop; the CNN and any augmented run
    take one graph step per batch (convolutions and the augmentation's gathers ran 8x slower
    inside an XLA loop on the CPU).
    With shift > 0 each batch is rolled by a random (dy, dx) in [-shift, shift]; MNIST
    digits sit in a blank 4 px border, so the wrap-around moves only zeros. With augment
    "ink" every image is distorted like real pen strokes (augment.ink), seeded by (seed, step).
    With outliers > 0, that many non-digits (augment.non_digits) join each batch, their loss
    the cross-entropy to the uniform distribution, weighted 0.5 (Hendrycks et al., 2019).
    With slivers > 0, that many of the batch's digits join it again, each with a sliver of a
    touching neighbour (augment.slivers), under their own labels.
    With a multi-replica `strategy`, B is the global batch: each step runs through
    strategy.run, each replica on its slice (see _distributed).
    """
    from edgedigits.augment import ink, non_digits
    from edgedigits.augment import slivers as sliver_pieces

    keras = import_keras("training")
    tf = import_tf("training")
    # per-image losses, averaged here: Keras's own mean divides by the replicas under a
    # tf.distribute strategy, and the replicas' share is applied explicitly below
    per_image = keras.losses.SparseCategoricalCrossentropy(reduction=None)

    def loss_fn(labels: Any, proba: Any) -> Any:
        return tf.reduce_mean(per_image(labels, proba))

    weights = model.trainable_variables
    xla = not (arch == "cnn" or augment != "none" or outliers or slivers)

    def gradients(batch: Any, seed: Any, i: Any, share: float = 1.0) -> tuple[Any, Any, Any]:
        """(loss x share, # correct, gradients of loss x share) on one batch of indices."""
        xb = tf.gather(x, batch)  # (B, 28, 28)
        yb = tf.gather(y, batch)  # (B,)
        if shift:
            dyx = tf.random.stateless_uniform(
                [2], seed=tf.stack([seed, i]), minval=-shift, maxval=shift + 1, dtype=tf.int32
            )
            xb = tf.roll(xb, shift=dyx, axis=[1, 2])
        if augment == "ink":
            xb = ink(xb, tf.stack([seed, i]))
        digits = yb  # accuracy counts the batch's own digits
        if slivers:  # the neighbour two along (the outliers' pairs are one along), but no 1:
            # a sliver of a 1 is a 1's stroke, and a 1 beside a digit was read as that digit
            others = tf.roll(xb, 2, axis=0)[:slivers]
            others = tf.where((tf.roll(yb, 2, axis=0)[:slivers] == 1)[:, None, None], 0.0, others)
            pieces = sliver_pieces(xb[:slivers], others, tf.stack([seed + 2, i]))
            xb, yb = tf.concat([xb, pieces], 0), tf.concat([yb, yb[:slivers]], 0)
        if outliers:  # the first pair's neighbour is the batch's last image: a sliver piece, if any
            others = non_digits(xb[:outliers], tf.roll(xb, 1, axis=0)[:outliers], tf.stack([seed + 1, i]))
        with tf.GradientTape() as tape:
            if outliers:
                both = model(tf.concat([xb, others], 0), training=True)  # (B + outliers, 10)
                proba = both[:-outliers]
                loss = loss_fn(yb, proba) + 0.5 * tf.reduce_mean(-tf.math.log(both[-outliers:] + 1e-7))
            else:
                proba = model(xb, training=True)  # (B, 10)
                loss = loss_fn(yb, proba)
            loss = loss * share
        guess = tf.argmax(proba[: tf.shape(digits)[0]], 1, output_type=tf.int32)
        hits = tf.reduce_sum(tf.cast(tf.equal(guess, digits), tf.int32))
        return loss, hits, tape.gradient(loss, weights)

    if strategy is not None:
        return _distributed(strategy, model, gradients, xla)

    def step(batch: Any, seed: Any, i: Any) -> tuple[Any, Any]:
        loss, hits, grads = gradients(batch, seed, i)
        model.optimizer.apply(grads, weights)
        return loss, hits

    if not xla:
        graph_step = tf.function(step, reduce_retracing=True)

        def run_steps(batches: Any, seed: Any) -> tuple[Any, Any]:
            loss_sum, correct = tf.constant(0.0), tf.constant(0)
            for i in range(int(batches.shape[0])):
                loss, hits = graph_step(batches[i], seed, tf.constant(i))
                loss_sum, correct = loss_sum + loss, correct + hits
            return loss_sum, correct

        return run_steps

    @tf.function(jit_compile=True, reduce_retracing=True)
    def run(batches: Any, seed: Any) -> tuple[Any, Any]:
        def body(i: Any, loss_sum: Any, correct: Any) -> tuple[Any, Any, Any]:
            loss, hits = step(batches[i], seed, i)
            return i + 1, loss_sum + loss, correct + hits

        steps = tf.shape(batches)[0]
        _, loss_sum, correct = tf.while_loop(
            lambda i, *_: i < steps, body, (tf.constant(0), tf.constant(0.0), tf.constant(0))
        )
        return loss_sum, correct

    return run


def _distributed(
    strategy: Any, model: Any, gradients: Callable[..., tuple[Any, Any, Any]], xla: bool
) -> Callable[[Any, Any], tuple[Any, Any]]:
    """The epoch loop under a multi-replica strategy. Each step goes through strategy.run:
    replica r takes slice r of the global batch (its own augmentation seed), computes its
    gradients of loss / replicas (XLA-compiled for the plain MLP: XLA cannot span devices,
    so the compiled part is one replica's forward and backward), and the optimizer sums the
    replicas' gradients: one step equals a one-device step on the global batch. Loss and hits
    are summed across replicas."""
    tf = import_tf("training")
    replicas = strategy.num_replicas_in_sync
    weights = model.trainable_variables
    compute = tf.function(gradients, jit_compile=True, reduce_retracing=True) if xla else gradients

    def replica_step(batch: Any, seed: Any, i: Any) -> tuple[Any, Any]:
        rid = tf.distribute.get_replica_context().replica_id_in_sync_group
        per = tf.shape(batch)[0] // replicas
        loss, hits, grads = compute(
            batch[rid * per : (rid + 1) * per], seed, i * replicas + rid, 1.0 / replicas
        )
        model.optimizer.apply(grads, weights)
        return loss, hits

    @tf.function(reduce_retracing=True)
    def run(batches: Any, seed: Any) -> tuple[Any, Any]:
        loss_sum, correct = tf.constant(0.0), tf.constant(0)
        for i in tf.range(tf.shape(batches)[0]):
            loss, hits = strategy.run(replica_step, args=(batches[i], seed, i))
            loss_sum += strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
            correct += strategy.reduce(tf.distribute.ReduceOp.SUM, hits, axis=None)
        return loss_sum, correct

    return run


def _atomic_checkpoint(path: Path, best: float) -> Any:
    """A Keras callback: ModelCheckpoint(save_best_only=True) that never leaves a half-written
    file. Defined here because its base class lives in Keras, imported only to train."""
    keras = import_keras("training")

    class AtomicCheckpoint(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best = best  # the best val_loss so far (a resumed run's included)

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if logs and logs["val_loss"] < self.best:
                self.best = logs["val_loss"]
                with atomic.atomic_path(path) as tmp:
                    self.model.save(tmp)

    return AtomicCheckpoint()


# ----------------------------------------------------------------------------- files


def _load_keras(path: Path) -> Any:
    from edgedigits.keras_io import load_keras_model

    return load_keras_model(path)


def _start_from(model: Any, path: Path, arch: str) -> None:
    """Copy a trained model's weights into `model` (same architecture); the optimizer starts fresh."""
    source = _load_keras(path)
    if source.name != model.name or [w.shape for w in source.weights] != [w.shape for w in model.weights]:
        raise OptionError(
            "init",
            f"{path}: a {source.name} model, not {{0}} {arch}'s {model.name}; pass the {{0}} it was "
            "trained with",
            "arch",
        )
    model.set_weights(source.get_weights())


def _open_resume(run_dir: Path, asked: TrainConfig) -> tuple[Path, TrainConfig, list]:
    """The saved run's settings, with this invocation's epochs, device and strategy (the
    machine may have changed), and its history."""
    atomic.clean_stale(run_dir)  # orphans of a run that was killed mid-write
    if not (run_dir / "checkpoint.keras").is_file():
        raise OptionError(
            "resume", f"{run_dir}: no checkpoint.keras there; pass a run directory made by `edgedigits train`"
        )
    try:
        saved = json.loads((run_dir / "config.json").read_text())
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        config = TrainConfig(**{k: v for k, v in saved.items() if k in fields})
    except (OSError, ValueError, TypeError) as exc:
        raise OptionError("resume", f"{run_dir}: unreadable config.json ({exc})") from exc
    config.epochs, config.device = asked.epochs, asked.device
    config.strategy, config.devices = asked.strategy, asked.devices
    try:
        config.validate()
    except EdgeDigitsError as exc:  # the saved settings themselves are bad
        raise OptionError("resume", f"{run_dir}: config.json is corrupt ({exc})") from exc
    return run_dir, config, _read_history(run_dir / "history.csv")


def _read_history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    try:
        return [{k: float(v) for k, v in row.items()} for row in rows]
    except (TypeError, ValueError) as exc:  # a non-number, or a short row (None)
        raise EdgeDigitsError(
            f"{path}: not a training history ({first_line(exc)}); restore it or start a new run"
        ) from exc


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (int(row[k]) if k == "epoch" else f"{row[k]:.6f}") for k in HISTORY_FIELDS})
    atomic.write_text(path, buf.getvalue())


def _final_metrics(
    model: Any,
    data: Dataset,
    history: list[dict[str, float]],
    device: str,
    train_seconds: float,
    interrupted: bool,
) -> dict[str, Any]:
    report = classification_report(data.y_test, _predict(model, data.x_test))
    best = min(history, key=lambda r: r["val_loss"])
    return {
        "test_accuracy": report["accuracy"],
        "test_loss": report["loss"],
        "per_class_accuracy": report["per_class_accuracy"],
        "confusion_matrix": report["confusion_matrix"],
        "data": data.name,
        "data_sizes": data.sizes(),
        "epochs_run": len(history),
        "best_epoch": int(best["epoch"]),
        "best_val_accuracy": best["val_accuracy"],
        "train_seconds": round(train_seconds, 3),
        "median_epoch_seconds": round(float(np.median([r["seconds"] for r in history])), 3),
        "device": device,
        "interrupted": interrupted,
    }


def _write_reports(run_dir: Path, history: list[dict[str, float]], metrics: dict[str, Any]) -> None:
    from edgedigits.plots import save_confusion, save_curves

    atomic.write_json(run_dir / "metrics.json", metrics)
    save_curves(history, run_dir / "curves.png")
    save_confusion(
        {"accuracy": metrics["test_accuracy"], "confusion_matrix": metrics["confusion_matrix"]},
        run_dir / "confusion.png",
        "test split",
    )
