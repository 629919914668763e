"""The `tf.train.Checkpoint` layouts of the original `main.py`, and strict restoring.

Layouts (root objects of the checkpoint):
  train  optimizers, global_step, epoch, train_examples_count, training_finished, networks
  infer  global_step, train_examples_count, networks
  eval   networks
Keys are object-graph paths, e.g. `generator/blocks/2/conv_block0/conv/kernel`. Restoring
compares the model's keys and shapes with `tf.train.list_variables` first, so a mismatch is
one `CheckpointMismatchError` line instead of a TensorFlow traceback or a silent partial load;
likewise an unreadable index or a missing, truncated or corrupt data shard is one `InputError`
line naming the file.
"""

from __future__ import annotations

import collections
import glob
import os
import re

import tensorflow as tf

from common.checkpoint import mismatch_report, not_found
from common.errors import CheckpointMismatchError, InputError

LAYOUTS = ("train", "infer", "eval")
OFFICIAL = (
    "the released model is the _trained_models/meta_learning folder linked from the README of "
    "github.com/MoustafaMeshry/lsr; pass that folder"
)
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_SLOT_MARK = "/.OPTIMIZER_SLOT/"
_SAVE_COUNTER = "save_counter" + _VALUE_SUFFIX
# Written by tf.train.Checkpoint itself, not part of any model.
_BOOKKEEPING = ("_CHECKPOINTABLE_OBJECT_GRAPH", _SAVE_COUNTER)


def make_counters() -> dict:
    """The training counters main.py saves beside the networks."""
    return {
        "global_step": tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step"),
        "epoch": tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
        "train_examples_count": tf.Variable(0, dtype=tf.int64, trainable=False, name="train_examples_count"),
        "training_finished": tf.Variable(False, dtype=tf.bool, trainable=False, name="training_finished"),
    }


def build_checkpoint(model, layout: str = "infer", counters: dict | None = None):
    """The checkpoint object main.py builds for `layout`, with every variable created.

    The networks are run once to create their variables and, for 'train', the optimizer
    slots are created too, so that restoring can check the whole object graph at once.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not '{layout}'")
    model.build_networks()
    if layout == "eval":
        return tf.train.Checkpoint(**model.get_networks())
    if counters is None:
        raise ValueError(f"the '{layout}' layout needs the counters (make_counters())")
    if layout == "infer":
        return tf.train.Checkpoint(
            global_step=counters["global_step"],
            train_examples_count=counters["train_examples_count"],
            **model.get_networks(),
        )
    optimizers = model.get_optimizers()
    if not optimizers:
        raise ValueError("the 'train' layout needs the model's optimizers (create_optimizers())")
    for name, var_list in model.trainable_variables_by_optimizer().items():
        # OptimizerV2 creates its slots lazily on the first step; create them now.
        optimizers[name]._create_all_weights(var_list)  # pylint: disable=protected-access
    return tf.train.Checkpoint(**optimizers, **counters, **model.get_networks())


def _escape(name: str) -> str:
    # tf.train.Checkpoint's escaping of '.' and '/' inside one path element.
    return name.replace(".", "..").replace("/", ".S")


def checkpoint_keys(root) -> dict:
    """Key -> tf.TensorSpec of every variable `root` saves, as `tf.train.Checkpoint` names it.

    A variable is keyed by its first path in a breadth-first walk of the object graph; an
    optimizer slot by its variable's path, the optimizer's path and the slot name.
    """
    paths = {id(root): ""}
    objects = collections.deque([root])
    variables, optimizers = [], []
    while objects:
        parent = objects.popleft()
        for name, child in tf.train.TrackableView.children(parent).items():
            if id(child) in paths:
                continue
            paths[id(child)] = f"{paths[id(parent)]}/{_escape(name)}".lstrip("/")
            objects.append(child)
            if isinstance(child, tf.Variable):
                variables.append(child)
            elif isinstance(child, tf.keras.optimizers.legacy.Optimizer):
                optimizers.append(child)
    keys = {paths[id(v)] + _VALUE_SUFFIX: tf.TensorSpec(v.shape, v.dtype) for v in variables}
    for optimizer in optimizers:
        for variable in variables:
            for slot_name in optimizer.get_slot_names():
                try:
                    slot = optimizer.get_slot(variable, slot_name)
                except KeyError:
                    continue
                key = f"{paths[id(variable)]}{_SLOT_MARK}{paths[id(optimizer)]}/{slot_name}"
                keys[key + _VALUE_SUFFIX] = tf.TensorSpec(slot.shape, slot.dtype)
    return {k: v for k, v in keys.items() if k not in _BOOKKEEPING}


def _reason(exc: BaseException) -> str:
    """TensorFlow's message on one line, without the op/stack context it may append."""
    text = " ".join(str(getattr(exc, "message", exc)).split())
    return text.split(" [Op:", 1)[0] or type(exc).__name__


def open_reader(prefix: str):
    """`tf.train.load_checkpoint(prefix)`, an unreadable index being a one-line `InputError`
    that names the `.index` file instead of TensorFlow's `OpError` traceback."""
    try:
        return tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as exc:
        raise InputError(
            f"{prefix}.index: not a readable TensorFlow checkpoint index ({_reason(exc)}); "
            "the file is corrupt or truncated: copy the checkpoint again"
        ) from None


def data_files(prefix: str) -> list[str]:
    """The `.data-NNNNN-of-MMMMM` shards the index at `prefix` needs; a one-line `InputError`
    naming the first one that is absent."""
    present = sorted(glob.glob(glob.escape(prefix) + ".data-*-of-*"))
    counts = {m.group(1) for f in present if (m := re.search(r"\.data-\d+-of-(\d+)$", f))}
    if len(counts) != 1:
        what = "no data shard" if not counts else f"data shards of different sets ({', '.join(sorted(counts))})"
        raise InputError(f"{prefix}.data-*: {what} beside {prefix}.index; copy the whole checkpoint again")
    total = counts.pop()
    needed = [f"{prefix}.data-{i:05d}-of-{total}" for i in range(int(total))]
    for name in needed:
        if not os.path.isfile(name):
            raise InputError(f"{name}: checkpoint data shard not found; copy the whole checkpoint again")
    return needed


def _data_error(prefix: str, exc: BaseException) -> InputError:
    """The one-line error for checkpoint data that cannot be read (a truncated or corrupt
    shard), naming the shard when TensorFlow's message or the shard count tells which."""
    reason = _reason(exc)
    shards = data_files(prefix)
    named = [f for f in shards if f in reason or os.path.basename(f) in reason]
    where = named[0] if named else shards[0] if len(shards) == 1 else f"{prefix}.data-*"
    return InputError(f"{where}: unreadable checkpoint data ({reason}); the shard is truncated or corrupt")


def read_tensor(prefix: str, key: str):
    """One stored value of the checkpoint at `prefix`, unreadable files being `InputError`s."""
    reader = open_reader(prefix)
    try:
        return reader.get_tensor(key)
    except (tf.errors.OpError, IndexError) as exc:
        raise _data_error(prefix, exc) from None


def saved_keys(prefix: str) -> dict:
    """Key -> tf.TensorSpec of every variable stored in the checkpoint at `prefix`."""
    reader = open_reader(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    return {
        key: tf.TensorSpec(shape, dtypes[key])
        for key, shape in reader.get_variable_to_shape_map().items()
        if key not in _BOOKKEEPING
    }


def latest_checkpoint(path) -> str:
    """The checkpoint prefix `path` names: itself (`.../ckpt-N`) or the latest one in the
    directory `path`, by its `checkpoint` file or else the highest ckpt-N.index."""
    path = os.fspath(path)
    if tf.io.gfile.exists(path + ".index"):
        return path
    if tf.io.gfile.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix:
            return prefix
        numbers = [int(m.group(1)) for f in tf.io.gfile.listdir(path) if (m := re.fullmatch(r"ckpt-(\d+)\.index", f))]
        if numbers:
            return os.path.join(path, f"ckpt-{max(numbers)}")
    raise not_found(path, "TensorFlow checkpoint (ckpt-N.index and ckpt-N.data-* files)", OFFICIAL)


def _short(key: str) -> str:
    return key[: -len(_VALUE_SUFFIX)] if key.endswith(_VALUE_SUFFIX) else key


def restore(checkpoint, path, partial: bool) -> str:
    """Restore the latest checkpoint under `path` into `checkpoint`; return its prefix.

    Every variable of `checkpoint` must be found with its shape. With `partial=False`
    (resuming training) the file must hold nothing else, like `assert_consumed()`; with
    `partial=True` (the infer/eval layouts) it may also hold what those layouts leave out:
    root objects they lack (optimizers, other counters) and optimizer slots.
    """
    prefix = latest_checkpoint(path)
    expected = checkpoint_keys(checkpoint)
    found = saved_keys(prefix)
    if partial:
        roots = {key.split("/", 1)[0] for key in expected}
        found = {key: spec for key, spec in found.items() if key.split("/", 1)[0] in roots and _SLOT_MARK not in key}
    report = mismatch_report({_short(k): v for k, v in expected.items()}, {_short(k): v for k, v in found.items()})
    if report:
        note = " (shapes: checkpoint vs model)" if "mis-shaped" in report else ""
        raise CheckpointMismatchError(f"{prefix}: does not match the model: {report}{note}")
    # read(), unlike restore(), does not add a save_counter that the file may lack (write()
    # omits it); create ours only when there is one to restore.
    if open_reader(prefix).has_tensor(_SAVE_COUNTER):
        _ = checkpoint.save_counter
    data_files(prefix)
    try:
        status = checkpoint.read(prefix)
    except (tf.errors.OpError, IndexError) as exc:
        # A truncated shard surfaces as IndexError ("Read less bytes than requested"), a
        # corrupt one as DataLossError, a vanished one as NotFoundError.
        raise _data_error(prefix, exc) from None
    try:
        if partial:
            status.assert_existing_objects_matched().expect_partial()
        else:
            status.assert_consumed()
    except AssertionError as exc:
        raise CheckpointMismatchError(f"{prefix}: {' '.join(str(exc).split())}") from None
    return prefix


def load_model(model, path, layout: str = "infer", counters: dict | None = None):
    """Build `layout`'s checkpoint object for `model`, restore `path` into it, return it.

    'train' must match exactly; 'infer' and 'eval' may skip what they leave out.
    """
    checkpoint = build_checkpoint(model, layout, counters)
    restore(checkpoint, path, partial=layout != "train")
    return checkpoint
