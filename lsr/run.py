"""LSR's run modes as library functions; `python -m lsr.main` is their command line.

Each takes an explicit `config`: any object with the attributes of `lsr.options`' flags
(`options.default_config(**overrides)`, or `options.config_from_flags()` in the CLI), which the
caller checks with `options.validate_options` first. Bad input raises `InputError`.

- `train(config, strategy)`: layout pre-training or meta-learning on the tfrecords of
  --dataset_parent_dir; checkpoints and TensorBoard summaries in --train_dir, resuming from its
  latest checkpoint (or warm-starting from --warmup_checkpoint).
- `evaluate(config, checkpoint_path, output_dir, strategy)`: K-shot reenactment of the
  standard test subset (--std_eval_subset_dir); io tuples in `output_dir`, L1 / PSNR / SSIM /
  loss means returned (and printed).
- `infer(config, checkpoint_path, output_dir)`: one source subject driven by one driver
  sequence (optionally fine-tuned first); io tuples in `output_dir`, returned with the output
  frames as `InferenceResult`.

`default_eval_dir` / `default_inference_dir` name the folders the original writes to (under
--train_dir), which the CLI passes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from common.errors import InputError
from common.image import write_image
from common.progress import progress
from lsr import checkpoint, data, engine, options
from lsr.data import frames as F
from lsr.losses import ModelLosses
from lsr.models import create_model

_LOG_FINETUNE_EVERY_N_STEPS = 10
_STEPS_PER_SEC_EVERY_N_STEPS = 100


def _frame_shape(config):
    return (config.train_resolution, config.train_resolution)


def _new_model(config):
    model = create_model(config)
    if hasattr(model, "init_extra_train_and_eval_networks"):
        model.init_extra_train_and_eval_networks()
    return model


def _stored_counter(directory, name):
    """A counter of the latest checkpoint in `directory`, or None without one."""
    prefix = tf.train.latest_checkpoint(directory) if tf.io.gfile.isdir(directory) else None
    if prefix is None:
        return None
    return int(checkpoint.read_tensor(prefix, f"{name}/.ATTRIBUTES/VARIABLE_VALUE"))


def _print_networks(model):
    for name, network in model.get_networks().items():
        count = sum(int(np.prod(v.shape)) for v in network.variables)
        print(f"{name}: {len(network.variables)} variables, {count:,} parameters")
        for variable in network.variables:
            print(f"  {variable.name} {variable.shape.as_list()}")


def _first_replica(batch):
    return {
        key: value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value
        for key, value in batch.items()
    }


def _warm_start(counters, model, directory):
    """Networks and counters from --warmup_checkpoint; only networks it holds (the layout
    pre-training run has no image generator), each restored completely."""
    prefix = checkpoint.latest_checkpoint(directory)
    roots = {key.split("/", 1)[0] for key in checkpoint.saved_keys(prefix)}
    networks = {k: v for k, v in model.get_networks().items() if k in roots}
    warm = tf.train.Checkpoint(
        global_step=counters["global_step"],
        epoch=counters["epoch"],
        train_examples_count=counters["train_examples_count"],
        **networks,
    )
    checkpoint.restore(warm, prefix, partial=True)
    print(f"*** Warm-started {', '.join(sorted(networks))} and the counters from {prefix}")


def _train_iteration(step_fn, batch, batch_idx, first_step, config):
    """One iteration as the original schedules it: G steps on every `--disc_steps_per_g`-th
    batch; with `--alternate_G_D_training` the G and D updates are separate passes (the first
    iteration always runs both together)."""
    train_g = first_step or batch_idx % config.disc_steps_per_g == 0
    if not config.alternate_G_D_training or first_step:
        return step_fn(batch, train_g, True)
    if train_g:
        step_fn(batch, True, False)
    return step_fn(batch, False, True)


def train(config, strategy=None):
    """Train until --total_k_examples (or --max_train_steps), resuming from --train_dir (which
    also receives the checkpoints, summaries and run_config.txt); returns the model.

    `strategy`: a `tf.distribute.Strategy`, by default `engine.make_strategy()` (every GPU).
    """
    strategy = engine.make_strategy() if strategy is None else strategy
    train_dir = os.fspath(config.train_dir)
    os.makedirs(train_dir, exist_ok=True)
    configs = options.list_configs(config)
    print(configs)
    with open(os.path.join(train_dir, "run_config.txt"), "a", encoding="utf-8") as f:
        f.write(configs + "# " + "=" * 61 + "\n")
    replicas = strategy.num_replicas_in_sync
    print(f"Number of devices: {replicas}")
    global_batch_size = config.batch_size * replicas
    dataset = data.provide(
        "tfrecords",
        os.path.join(config.dataset_parent_dir, config.trainset_pattern),
        config.use_segmaps,
        global_batch_size,
        k_frames=config.K,
        num_concatenations=config.num_frame_concatenations,
        is_training=True,
        shuffle=True,
    )
    dist_dataset = strategy.experimental_distribute_dataset(dataset)

    # The schedule is placed from the counters already in train_dir (not the warm-up run's,
    # so a warm-started run keeps counting from the pre-training steps, as the original).
    prev_step = _stored_counter(train_dir, "global_step") or 0
    prev_examples = _stored_counter(train_dir, "train_examples_count") or 0
    total_examples = config.total_k_examples * 1000
    decay_start_step = (
        prev_step + (total_examples - config.num_lr_decay_k_examples * 1000 - prev_examples) // global_batch_size
    )
    decay_end_step = prev_step + (total_examples - prev_examples) // global_batch_size
    lr_mul = replicas if config.scale_lr_with_num_gpus else 1
    # The original passes lr_mul_factor where create_optimizers expects starting_step.
    starting_step, lr_mul = (0, lr_mul) if config.fix_lr_starting_step else (lr_mul, 1)

    with strategy.scope():
        model = _new_model(config)
        counters = checkpoint.make_counters()
        model.create_optimizers(
            counters["global_step"],
            config.lr_warmstart_steps,
            decay_start_step,
            decay_end_step,
            config.decay_num_intervals,
            starting_step=starting_step,
            lr_mul_factor=lr_mul,
        )
        ckpt = checkpoint.build_checkpoint(model, "train", counters)
        model_losses = ModelLosses(config)
    manager = tf.train.CheckpointManager(
        ckpt,
        directory=train_dir,
        max_to_keep=config.max_checkpoints_to_keep,
        keep_checkpoint_every_n_hours=config.keep_checkpoint_every_n_hours,
    )
    if manager.latest_checkpoint:
        print(f"Restoring model weights from {manager.latest_checkpoint}")
        checkpoint.restore(ckpt, manager.latest_checkpoint, partial=False)
    elif config.warmup_checkpoint:
        _warm_start(counters, model, config.warmup_checkpoint)
    else:
        print("Initializing networks from scratch!")
    model_losses.load_pretrained_weights()

    global_step, examples, epoch = (counters[k] for k in ("global_step", "train_examples_count", "epoch"))
    if examples.numpy() >= total_examples:
        print(f"Model has already trained for --total_k_examples={config.total_k_examples}.")
        return model
    optimizers = model.get_optimizers()
    step_fn = engine.make_train_step(
        model, model_losses, strategy, global_batch_size, engine.variables_to_train(model, finetuning=False)
    )
    writer = tf.summary.create_file_writer(train_dir)
    started, timer = time.time(), (time.time(), int(global_step.numpy()))
    first_step, done = True, False
    while examples.numpy() < total_examples and not done:
        batches = 0
        for batch_idx, batch in enumerate(dist_dataset):
            batches += 1
            step = int(global_step.numpy())
            losses, outputs = _train_iteration(step_fn, batch, batch_idx, first_step, config)
            if first_step:
                _print_networks(model)
                first_step = False
            examples.assign_add(global_batch_size)
            with writer.as_default():
                if step % config.save_summaries_every_n_steps == 0:
                    engine.write_summaries(step, optimizers, losses, _first_replica(batch), outputs)
                if step - timer[1] >= _STEPS_PER_SEC_EVERY_N_STEPS:
                    rate = (step - timer[1]) / (time.time() - timer[0])
                    tf.summary.scalar("steps/sec", rate, step=step)
                    timer = (time.time(), step)
            if step % config.log_info_every_n_steps == 0:
                d_iter = optimizers["d_optimizer"].iterations.numpy() if "d_optimizer" in optimizers else "N/A"
                g_name = "g_layout_optimizer" if config.model_type == "pretrain_layout" else "g_optimizer"
                print(
                    f"[EPOCH {epoch.numpy() + 1}; i_batch={batch_idx}; global_step={step} "
                    f"num_k_examples={examples.numpy() // 1000} (g_iter="
                    f"{optimizers[g_name].iterations.numpy()}, d_iter={d_iter})]: "
                    + ", ".join(f"{k}={float(v):.3f}" for k, v in losses.items()),
                    flush=True,
                )
            global_step.assign_add(1)
            if (global_step.numpy() - 1) % config.save_checkpoint_every_n_steps == 0:
                manager.save(checkpoint_number=global_step.numpy())
            if examples.numpy() // config.trainset_size > epoch.numpy():
                epoch.assign_add(1)
                break
            if 0 <= config.max_train_steps <= global_step.numpy():
                done = True
                break
        if not batches:
            raise InputError(
                f"{config.dataset_parent_dir}/{config.trainset_pattern}: fewer "
                f"examples than one global batch ({global_batch_size})"
            )
    if examples.numpy() >= total_examples:
        counters["training_finished"].assign(True)
    manager.save(checkpoint_number=global_step.numpy())
    writer.close()
    print(
        f"Total runtime for {int(global_step.numpy()) - prev_step} steps "
        f"({epoch.numpy()} epochs) = {time.time() - started:.1f} s."
    )
    return model


def _write_io_tuples(output_dir, batch, outputs, start_index) -> list[Path]:
    """One `<person>-<video>-<part>_<NNNNN>_io_tuple.png` per example, numbered from
    `start_index`; returns their paths."""
    tuples = engine.io_tuples(batch, outputs.get("output"), outputs["segmap_label_map"])
    return [
        write_image(os.path.join(output_dir, f"{name}_{index:05d}_io_tuple.png"), image)
        for index, (name, image) in enumerate(zip(engine.basenames(batch), tuples), start_index)
    ]


def default_eval_dir(config) -> str:
    """Where the original writes eval's io tuples: <train_dir>/val_set-K=<K>."""
    return os.path.join(config.train_dir, f"val_set-K={config.K}")


def evaluate(config, checkpoint_path, output_dir, strategy=None) -> str:
    """K-shot reenactment of every (train, test) folder pair of --std_eval_subset_dir with the
    weights of `checkpoint_path` (a ckpt-N prefix or a folder: its latest); io tuples written
    to `output_dir`; returns (and prints) the metrics summary."""
    strategy = engine.make_strategy() if strategy is None else strategy
    replicas = strategy.num_replicas_in_sync
    print(f"Number of devices: {replicas}")
    global_batch_size = config.batch_size * replicas
    pattern = os.path.join(config.std_eval_subset_dir, "{}", "*", "*", "*")
    dataset = data.provide(
        "folder_pairs",
        pattern.format("train"),
        pattern.format("test"),
        config.use_segmaps,
        global_batch_size,
        k_frames=config.K,
        max_frames=-1,
        frame_shape=_frame_shape(config),
    )
    with strategy.scope():
        model = _new_model(config)
        checkpoint.load_model(model, checkpoint_path, "eval")
        model_losses = ModelLosses(config)
    model_losses.load_pretrained_weights()
    val_dir = os.fspath(output_dir)
    os.makedirs(val_dir, exist_ok=True)

    @tf.function
    def eval_step(batch):
        def replica_step(batch):
            outputs = engine.forward(model, batch, training=False)
            losses = model_losses.compute_losses(model, outputs, batch, training=False)
            return engine.public_outputs(outputs), losses

        return strategy.run(replica_step, args=(batch,))

    metrics, index = engine.EvalMetrics(), 0
    for batch_idx, batch in enumerate(strategy.experimental_distribute_dataset(dataset)):
        if batch_idx % 10 == 0:
            print(f"Evaluating minibatch #{batch_idx:04d}.")
        outputs, losses = eval_step(batch)
        local = strategy.experimental_local_results
        for r, outs in enumerate(local(outputs)):
            replica_batch = {k: local(v)[r] for k, v in batch.items()}
            replica_losses = {k: local(v)[r] for k, v in losses.items()}
            index += len(_write_io_tuples(val_dir, replica_batch, outs, index))
            if "output" in outs:
                metrics.update(replica_batch[F.TARGET_FRAME_KEY], outs["output"], replica_losses)
    summary = metrics.summary()
    print(summary)
    return summary


def _max_finetune_steps(config) -> int:
    if config.max_finetune_steps > 0 or not config.auto_max_finetune_steps:
        return max(config.max_finetune_steps, 0)
    for k_below, steps in ((4, 24), (8, 60), (16, 100), (32, 200)):
        if config.K < k_below:
            return steps
    return 400


def _subject_id(path) -> str:
    return "_".join(os.path.normpath(path).split(os.sep)[-3:])


def _finetune(config, model, counters, latents, source_dir, output_dir, steps):
    """Subject fine-tuning on every source frame (batch 1, repeated, shuffled) with the
    frozen K-shot latents and fresh optimizers whose LR decays over the second half."""
    strategy = tf.distribute.get_strategy()
    # Per-example losses are divided by --batch_size although batches hold one example.
    global_batch_size = config.batch_size * strategy.num_replicas_in_sync
    dataset = (
        data.provide(
            "folder_pairs",
            source_dir,
            source_dir,
            config.use_segmaps,
            batch_size=1,
            k_frames=1,
            same_video_eval=False,
            frame_shape=_frame_shape(config),
        )
        .repeat(-1)
        .shuffle(64)
    )
    prev_step = int(counters["global_step"].numpy())
    decay_start = prev_step + (steps // 2 if config.decay_lr else steps)
    lr_mul = strategy.num_replicas_in_sync if config.scale_lr_with_num_gpus else 1
    model.create_optimizers(
        counters["global_step"],
        0,
        decay_start,
        prev_step + steps,
        config.decay_num_intervals,
        starting_step=prev_step,
        lr_mul_factor=lr_mul,
    )
    model_losses = ModelLosses(config)
    model_losses.load_pretrained_weights()
    step_fn = engine.make_train_step(
        model, model_losses, strategy, global_batch_size, engine.variables_to_train(model, finetuning=True), latents
    )
    every = config.save_summaries_every_n_steps
    writer = tf.summary.create_file_writer(output_dir) if every > 0 else None
    for batch_idx, batch in enumerate(dataset.take(steps)):
        losses, outputs = step_fn(batch)
        if writer is not None and batch_idx % every == 0:
            with writer.as_default():
                engine.write_summaries(
                    int(counters["global_step"].numpy()), model.get_optimizers(), losses, batch, outputs
                )
        if batch_idx % _LOG_FINETUNE_EVERY_N_STEPS == 0:
            print(
                f"[Fine-tune step={batch_idx + 1}; global_step="
                f"{counters['global_step'].numpy()}]: " + ", ".join(f"{k}={float(v):.3f}" for k, v in losses.items()),
                flush=True,
            )
        counters["train_examples_count"].assign_add(global_batch_size)
        counters["global_step"].assign_add(1)
    if writer is not None:
        writer.close()


def default_inference_dir(config) -> str:
    """Where the original writes infer's io tuples:
    <train_dir>/inference/<src>--<drv>--K<KK>-<meta|ft> (<src>, <drv>: the last three path
    components of --source_subject_dir / --driver_subject_dir joined by '_')."""
    suffix = f"K{config.K:02}-{'ft' if config.few_shot_finetuning else 'meta'}"
    return os.path.join(
        config.train_dir,
        "inference",
        f"{_subject_id(config.source_subject_dir)}--{_subject_id(config.driver_subject_dir)}--{suffix}",
    )


@dataclass
class InferenceResult:
    """What `infer` produced: the io-tuple PNGs it wrote (driver frame order) and, per driver
    frame, the output panel as HxWx3 uint8 (none for a layout-only pretrain_layout model)."""

    output_dir: Path
    io_tuples: list[Path] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)


def infer(config, checkpoint_path, output_dir) -> InferenceResult:
    """Reenact --source_subject_dir (its first K frames as the few-shot inputs, evenly spaced)
    with every frame of --driver_subject_dir, with the weights of `checkpoint_path` (a ckpt-N
    prefix or a folder: its latest), fine-tuned first with --few_shot_finetuning (and saved into
    `output_dir` with --save_subject_checkpoint); io tuples written to `output_dir`. The networks
    compute at --precision (`engine.precision_policy`); the frames are float32 either way."""
    engine.check_inference_precision(config)
    source_dir, driver_dir = config.source_subject_dir, config.driver_subject_dir
    shape = _frame_shape(config)
    # Every input is checked before anything is created or restored.
    few_shot = data.provide(
        "subject_folders",
        source_dir,
        config.use_segmaps,
        k_frames=config.K,
        batch_size=1,
        max_examples=1,
        max_sequence_frames=config.K,
        frame_shape=shape,
    )
    drivers = data.provide(
        "folder_pairs",
        driver_dir,
        driver_dir,
        config.use_segmaps,
        batch_size=1,
        k_frames=1,
        same_video_eval=False,
        frame_shape=shape,
    )
    prefix = checkpoint.latest_checkpoint(checkpoint_path)
    finetune = config.few_shot_finetuning
    output_dir = os.fspath(output_dir)

    counters = checkpoint.make_counters()
    with engine.precision_policy(config.precision):  # restoring builds (creates) every layer
        model = _new_model(config)
        ckpt = checkpoint.load_model(model, prefix, "infer", counters)
    if tf.train.latest_checkpoint(output_dir):
        # As the original: only a warning, the weights still come from the meta-learned model.
        print(f"Warning: {output_dir} holds a subject checkpoint; restoring {prefix} instead")
    print(f"Restored meta-learned model weights from {prefix}")
    os.makedirs(output_dir, exist_ok=True)
    few_shot_batch = next(iter(few_shot))
    latents = model.compute_latents(engine.encoder_inputs(config, few_shot_batch), training=False)

    if finetune:
        steps = _max_finetune_steps(config)
        if steps == 0:
            print(
                "Note: --max_finetune_steps<=0 fine-tunes nothing (as the original); give a "
                "step count or --auto_max_finetune_steps"
            )
        _finetune(config, model, counters, latents, source_dir, output_dir, steps)
        if config.save_subject_checkpoint:
            manager = tf.train.CheckpointManager(ckpt, output_dir, max_to_keep=1)
            print(f"Saved {manager.save(checkpoint_number=counters['global_step'].numpy())}")

    run = tf.function(
        lambda batch: engine.public_outputs(engine.forward(model, batch, training=False, latents=latents))
    )
    result, started = InferenceResult(Path(output_dir)), None
    for batch in progress(drivers, desc="driver frames"):
        outputs = run(batch)
        result.io_tuples += _write_io_tuples(output_dir, batch, outputs, len(result.io_tuples))
        if "output" in outputs:
            result.frames.extend(engine.output_images(outputs["output"]))
        started = started or time.time()  # timing starts after the first frame (tracing)
    index = len(result.io_tuples)
    per_frame = 1000 * (time.time() - started) / (index - 1) if index > 1 else float("nan")
    print(f"Wrote {index} io tuples to {output_dir} ({per_frame:.1f} ms per frame)")
    return result
