"""Command line: parse, build a config, call the library, map errors to exit codes.

Exit codes: 0 success, 1 error (one line on stderr, no traceback), 2 usage error,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 129 hung up (SIGHUP). The signals are
handled like Ctrl-C: outputs complete under their final names, temp files removed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from edgedigits import __version__
from edgedigits.errors import EdgeDigitsError, OptionError

Handler = Callable[[argparse.Namespace], int]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


# ----------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from edgedigits.train import TrainConfig, train

    config = TrainConfig(
        data=args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        seed=args.seed,
        out=args.out,
        device=args.device,
        shift=args.shift,
        augment=args.augment,
        arch=args.arch,
        outliers=args.outliers,
        slivers=args.slivers,
        patience=args.patience,
        lr_schedule=args.lr_schedule,
        strategy=args.strategy,
        devices=args.devices or "",
        init=args.init or "",
    )
    result = train(config, resume=Path(args.resume) if args.resume else None)
    m = result.metrics
    print(
        f"run directory: {result.run_dir}"
        if result.chief
        else "worker done: the chief task wrote the run directory"
    )
    print(
        f"test accuracy: {m['test_accuracy']:.2%} on {m['data']} "
        f"({m['epochs_run']} epochs, best epoch {m['best_epoch']}, {m['train_seconds']:.1f} s)"
    )
    return _interrupted_code() if result.interrupted else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from edgedigits import atomic
    from edgedigits.metrics import evaluate, format_report

    if args.json:
        atomic.check_writable(args.json, "json")
    report = evaluate(args.model, args.data, args.backend)
    human = _human_output(args.json)
    print(
        f"{report['model']} ({report['backend']} on {report['device']}), test split of {report['data']}",
        file=human,
    )
    print(format_report(report), file=human)
    if args.json:
        atomic.write_json(args.json, {k: v for k, v in report.items() if k != "device"})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from edgedigits.export import ExportConfig, export_model, select_variants

    config = ExportConfig(
        source=args.source,
        variants=select_variants(args.format, args.quantize),
        opset=args.opset,
        out=args.out,
        data=args.data,
        triton=args.format == "triton",
    )
    export_model(config)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from edgedigits.assets import bundled_model
    from edgedigits.runtime import load_classifier

    model = Path(args.model) if args.model else bundled_model()
    clf = load_classifier(model)  # one load: it also verifies the file against its metadata
    meta = clf.metadata()
    size_kb = model.stat().st_size / 1024
    print(f"{clf.path}  ({clf.backend}, {size_kb:.1f} KB, runs on {clf.device})")
    if not meta:
        print("  no edgedigits metadata in this file")
    if "fingerprint" in meta:  # 80 numbers: say what it is, not what it holds
        meta["fingerprint"] = "outputs on 8 probe images, checked at every load: OK"
    if "probe_labels" in meta:
        meta["probe_labels"] = (
            f"labels of {len(meta['probe_labels'])} shipped test digits, checked at every load: OK"
        )
    width = max((len(k) for k in meta), default=0)
    for key, value in sorted(meta.items()):
        print(f"  {key:<{width}}  {value}")
    return 0


def cmd_camera(args: argparse.Namespace) -> int:
    from edgedigits.camera.loop import CameraConfig, main_summary, run_camera

    config = CameraConfig(
        model=args.model,
        second_model=args.second_model,
        source=args.source,
        headless=args.headless,
        output_jsonl=args.output_jsonl,
        output_video=args.output_video,
        min_confidence=args.min_confidence,
        max_frames=args.max_frames,
        backend=args.backend,
        threads=args.threads,
        max_pixels=args.max_pixels,
    )
    human = _human_output(args.output_jsonl)
    print(main_summary(run_camera(config, log=lambda line: print(line, file=human))), file=human)
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from edgedigits.pipeline import PipelineConfig, run_pipeline

    run_dir = run_pipeline(PipelineConfig(data=args.data, out=args.out, epochs=args.epochs, seed=args.seed))
    print(f"run directory: {run_dir}")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected numbers >= 1, got {text!r}")
    return values


def cmd_bench(args: argparse.Namespace) -> int:
    from edgedigits.bench import BenchConfig, require_plotting, run_bench, to_markdown, write_outputs

    if args.plot:
        require_plotting()
    from edgedigits import atomic

    for option, target in (("json", args.json), ("markdown", args.markdown), ("plot", args.plot)):
        if target:
            atomic.check_writable(target, option)
    from edgedigits.assets import bundled_model
    from edgedigits.bench import find_models

    model_dir = args.model_dir or ("." if find_models(Path(".")) else str(bundled_model().parent))
    config = BenchConfig(
        model_dir=model_dir,
        batch_sizes=args.batch_sizes,
        threads=args.threads,
        seconds=args.seconds,
        cold_start=not args.no_cold_start,
    )
    report = run_bench(config, progress=_progress if sys.stderr.isatty() else None)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(to_markdown(report), file=_human_output(args.json, args.markdown))
    write_outputs(report, args.json, args.markdown, args.plot)
    return 0


def _human_output(*outputs: str | None) -> TextIO:
    """Where messages for people go: stderr when a data output is standard output ('-')."""
    return sys.stderr if "-" in outputs else sys.stdout


def _progress(text: str) -> None:
    print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from edgedigits.augment import AUGMENTS  # light: TensorFlow is imported inside their functions
    from edgedigits.distribute import STRATEGIES
    from edgedigits.formats import BACKENDS, EDGE_BACKENDS
    from edgedigits.model import ARCHS

    parser = argparse.ArgumentParser(
        prog="edgedigits",
        description="Train the seed digit MLP, export it to ONNX/TFLite with parity proofs, "
        "run it on a webcam, and benchmark every backend.",
    )
    parser.add_argument("--version", action="version", version=f"edgedigits {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="fit the seed MLP or the CNN (GPU when TensorFlow sees one)")
    p.add_argument(
        "--data",
        default="mnist",
        help="mnist (download; falls back to mnist-5k offline), mnist-5k, "
        "an .npz or an IDX folder (default: mnist)",
    )
    p.add_argument("--epochs", type=_positive_int, default=30, help="at most this many (default 30)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="default 32")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="default sgd")
    p.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=None,
        help="default: SGD 0.1, Adam 0.001 (0.01 with --lr-schedule constant is the seed)",
    )
    p.add_argument("--seed", type=int, default=0, help="default 0")
    p.add_argument("--out", default="runs", help="parent of the run directory (default runs)")
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="continue RUN_DIR from its checkpoint for --epochs more epochs"
    )
    p.add_argument(
        "--shift",
        type=int,
        default=0,
        metavar="PX",
        help="augment: translate batches by up to PX pixels (default 0, as the seed)",
    )
    p.add_argument(
        "--augment",
        choices=AUGMENTS,
        default="none",
        help="ink: rotate, shear, scale, shift, elastic, stroke width, blur, noise "
        "on the fly (default none, as the seed)",
    )
    p.add_argument(
        "--arch",
        choices=ARCHS,
        default="mlp",
        help="mlp: the seed (default); cnn: a 98k-parameter CNN for real handwriting",
    )
    p.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="cosine",
        help="cosine (default): decay the learning rate to 5%% of it over --epochs; constant: the seed's",
    )
    p.add_argument(
        "--patience",
        type=_positive_int,
        default=5,
        help="stop after this many epochs without a better val_loss (default 5, as the seed)",
    )
    p.add_argument(
        "--outliers",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="add this share of each batch as non-digits (two digits written touching) "
        "trained toward low confidence (default 0, as the seed)",
    )
    p.add_argument(
        "--slivers",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="add this share of each batch again with a sliver of a touching neighbour, under "
        "its own label: how the camera's cut pieces look (default 0, as the seed)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="tf.distribute: mirrored over every GPU (or --devices), multiworker from "
        "TF_CONFIG; auto: mirrored when 2+ GPUs are visible (default auto). "
        "--batch-size is per replica",
    )
    p.add_argument(
        "--init",
        metavar="MODEL.keras",
        help="start from this model's weights (fine-tuning; same --arch), with a fresh optimizer",
    )
    p.add_argument(
        "--devices", metavar="LIST", help="mirrored over these devices, e.g. GPU:0,GPU:1 (default: every GPU)"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="accuracy, per-class accuracy and confusion of a model")
    p.add_argument("model", help="a .keras, .onnx or .tflite file")
    p.add_argument("--data", default="mnist", help="as for train (default mnist)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.set_defaults(func=cmd_eval)

    from edgedigits.export import FORMATS, QUANTIZE  # the export registry: no TensorFlow

    p = sub.add_parser("export", help="ONNX/TFLite exports, each proven against Keras (parity.json)")
    p.add_argument("source", metavar="RUN_DIR|MODEL.keras")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="all",
        help="triton: the ONNX export in a Triton Inference Server model repository "
        "(OUT/triton); default all",
    )
    p.add_argument(
        "--quantize",
        choices=QUANTIZE,
        default=None,
        help="default: float for one format, every variant for all",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--out", help="output folder (default RUN_DIR/export)")
    p.add_argument("--data", help="parity/calibration data (default: the run's training data)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("camera", help="live digit recognition on a webcam, video, image(s) or demo")
    p.add_argument("--model", help="a .onnx or .tflite file (default: the bundled model.onnx)")
    p.add_argument(
        "--second-model",
        metavar="FILE|none",
        help="an image's or folder's cut pieces (touching digits) are read by --model and this "
        "model too, their geometric mean (default: the shipped second.onnx with the bundled "
        "model, none with another); none: --model alone",
    )
    p.add_argument(
        "--source", default="0", help="webcam index, video file, image, folder of images, or demo (default 0)"
    )
    p.add_argument("--headless", action="store_true", help="no window")
    p.add_argument("--output-jsonl", metavar="FILE", help="one JSON object per frame")
    p.add_argument("--output-video", metavar="FILE", help="the annotated frames (.mp4 or .avi)")
    p.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=50_000_000,
        metavar="N",
        help="refuse images whose header declares more pixels (default 50 megapixels)",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        default=0.5,
        help="drop detections less sure than this (default 0.5, chosen by measurement: README)",
    )
    p.add_argument("--max-frames", type=_positive_int, metavar="N")
    p.add_argument("--backend", choices=EDGE_BACKENDS, default="auto")
    p.add_argument("--threads", type=_positive_int, metavar="N", help="inference threads")
    p.set_defaults(func=cmd_camera)

    p = sub.add_parser("bench", help="latency/throughput of every backend, side by side")
    p.add_argument(
        "--model-dir",
        help="a run dir (model.keras + export/) or a folder of exported "
        "models (default: this folder when it holds models, else the bundled model)",
    )
    p.add_argument("--batch-sizes", type=_int_list, default=[1, 32, 1024], help="default 1,32,1024")
    p.add_argument("--threads", type=_int_list, default=[1, 2], help="default 1,2")
    p.add_argument(
        "--seconds", type=_positive_float, default=0.5, help="time budget per measurement (default 0.5)"
    )
    p.add_argument("--no-cold-start", action="store_true", help="skip the fresh-process timings")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--markdown", metavar="FILE")
    p.add_argument("--plot", metavar="FILE", help="PNG chart, log scale")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("pipeline", help="train -> export -> parity -> bench -> camera demo -> report.md")
    p.add_argument("--data", default="mnist", help="as for train (default mnist; offline: mnist-5k)")
    p.add_argument("--out", default="runs", help="parent of the run directory (default runs)")
    p.add_argument("--epochs", type=_positive_int, default=30, help="default 30")
    p.add_argument("--seed", type=int, default=0, help="default 0")
    p.set_defaults(func=cmd_pipeline)

    p = sub.add_parser("info", help="print the metadata embedded in a model file")
    p.add_argument("model", nargs="?", help="a .onnx, .tflite or .keras file (default: the bundled model)")
    p.set_defaults(func=cmd_info)
    return parser


_STOPPED_BY = [signal.SIGINT]  # the signal that interrupted this run


def _stop(signum: int, frame: object) -> None:
    """SIGTERM/SIGHUP: unwind exactly as Ctrl-C does, through every cleanup on the way."""
    _STOPPED_BY[0] = signum
    raise KeyboardInterrupt


def _interrupted_code() -> int:
    return 128 + int(_STOPPED_BY[0])  # 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, _stop)
    try:
        return int(args.func(args))
    except OptionError as exc:  # the library names the setting; the user typed its flag
        print(f"edgedigits {args.command}: error: {exc.for_cli()}", file=sys.stderr)
        return 1
    except EdgeDigitsError as exc:
        print(f"edgedigits {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"edgedigits {args.command}: interrupted", file=sys.stderr)
        return _interrupted_code()
    except BrokenPipeError:  # `edgedigits info M | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # disk full, permission denied, read-only file system...
        if os.environ.get("EDGEDIGITS_DEBUG") == "1":
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(
            f"edgedigits {args.command}: error: {where}{exc.strerror or exc}; free space or "
            "choose another output path (files written before are intact)",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # a bug or an unforeseen input: one line, the traceback on request
        if os.environ.get("EDGEDIGITS_DEBUG") == "1":
            raise
        from edgedigits.errors import first_line

        print(
            f"edgedigits {args.command}: error: {type(exc).__name__}: {first_line(exc)} "
            "(EDGEDIGITS_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
