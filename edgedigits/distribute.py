"""Training on more than one device: which tf.distribute strategy `train --strategy` uses.

  one          the default strategy: one device (the GPU when TensorFlow sees one, else the CPU)
  mirrored     tf.distribute.MirroredStrategy over every GPU TensorFlow sees, or `--devices`
               (on a machine without GPUs: every logical CPU device, which is how the tests
               split one CPU into two replicas)
  multiworker  tf.distribute.MultiWorkerMirroredStrategy, its cluster and this process's task
               read from the TF_CONFIG environment variable, as TensorFlow documents
  auto         mirrored when more than one GPU is visible, else one

`--batch-size` is per replica; the global batch is that times the replicas. The train loop
(train.py) slices each global batch by replica id inside `strategy.run` and the optimizer
sums the replicas' gradients, so one step on N replicas equals one step on one device.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from edgedigits._tf import import_tf
from edgedigits.errors import EdgeDigitsError, OptionError

STRATEGIES = ("auto", "one", "mirrored", "multiworker")


@dataclass
class Distribution:
    strategy: Any  # a tf.distribute.Strategy
    replicas: int
    description: str  # printed: which strategy, over which devices
    chief: bool  # this process writes the run directory (always, except non-chief workers)


def make_strategy(choice: str, devices: str = "") -> Distribution:
    """The strategy for `--strategy` (after select_device has set the visible devices).

    Raises:
        EdgeDigitsError: an unknown choice, devices TensorFlow does not have, or a missing or
            malformed TF_CONFIG for multiworker (one line each).
    """
    if choice not in STRATEGIES:
        raise OptionError("strategy", f"must be one of {', '.join(STRATEGIES)}, got {choice!r}")
    tf = import_tf("distributed training")
    if choice == "multiworker":
        cluster, kind, index = _tf_config()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        replicas = int(strategy.num_replicas_in_sync)
        # TensorFlow's rule: the chief task, else worker 0, writes; the others write to a temp dir
        chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
        tasks = sum(len(v) for v in cluster.values())
        return Distribution(
            strategy,
            replicas,
            f"multiworker: {replicas} replicas in {tasks} tasks (this is {kind} {index})",
            chief,
        )
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if choice == "one" or (choice == "auto" and len(gpus) < 2 and not devices):
        return Distribution(tf.distribute.get_strategy(), 1, "one device", True)
    names = (
        [d.strip() for d in devices.split(",") if d.strip()]
        if devices
        else (gpus or [d.name for d in tf.config.list_logical_devices("CPU")])
    )
    known = {_short(d.name) for d in tf.config.list_logical_devices()}
    missing = [n for n in names if _short(n) not in known]
    if missing:
        raise OptionError(
            "devices",
            f"{', '.join(missing)}: TensorFlow has no such device; it has {', '.join(sorted(known))}",
        )
    strategy = tf.distribute.MirroredStrategy(names)
    replicas = int(strategy.num_replicas_in_sync)
    return Distribution(strategy, replicas, f"mirrored over {replicas} device(s): {', '.join(names)}", True)


def split_cpu(n: int) -> None:
    """Split the first CPU into `n` logical devices (before TensorFlow initialises), so a
    machine without GPUs can run the mirrored path with n replicas."""
    tf = import_tf("distributed training")
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def _short(name: str) -> str:
    """'GPU:1', '/gpu:1', '/device:GPU:1' or a full device name -> 'gpu:1'."""
    name = name.lower()
    return name.rsplit("device:", 1)[-1] if "device:" in name else name.lstrip("/")


def _tf_config() -> tuple[dict[str, Any], str, int]:
    """(cluster, this task's type, its index) from TF_CONFIG."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise OptionError(
            "strategy",
            "multiworker needs TF_CONFIG: set it on every worker to "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": N}}',
        )
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        workers = cluster[task["type"]]
        if not isinstance(workers, list) or not 0 <= int(task["index"]) < len(workers):
            raise ValueError(f"task index {task['index']} is not in the {task['type']} list")
        return dict(cluster), str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise EdgeDigitsError(
            f"TF_CONFIG is malformed ({exc}); see the README's multi-worker section for its shape"
        ) from exc
