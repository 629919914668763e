"""What the run modes of `lsr.run` share: the forward pass on a provider batch, the distributed
training step, the inference precision, io-tuple images, TensorBoard summaries and the evaluation
metrics."""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf

from common.errors import InputError
from common.image import to_uint8
from common.parsing.labels import colorize
from common.precision import check_precision
from lsr.data import frames as F

MODEL_RANGE = (-1.0, 1.0)  # the range of every image tensor (frames, landmark drawings, outputs)


# The Keras dtype policy of each --precision: a mixed policy keeps the variables float32 (so every
# checkpoint restores as it is) and runs the layers' arithmetic in the reduced type.
PRECISION_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def inference_device() -> str:
    """'cuda' when TensorFlow sees a GPU (where inference runs), else 'cpu'."""
    return "cuda" if tf.config.list_logical_devices("GPU") else "cpu"


def check_inference_precision(config) -> None:
    """InputError for a --precision this machine or run cannot use: fp16 on the CPU, or reduced
    precision with --few_shot_finetuning (it covers the forward passes of inference only)."""
    check_precision(config.precision, inference_device())
    if config.precision != "fp32" and config.few_shot_finetuning:
        raise InputError(f"--precision={config.precision} is for inference only; fine-tune with --precision=fp32")


@contextlib.contextmanager
def precision_policy(precision: str):
    """Keras layers created inside compute at `precision` (fp32: nothing changes).

    Sub-layers are created when a network is first built, so build the networks inside too.
    """
    if precision == "fp32":
        yield
        return
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(PRECISION_POLICIES[precision])
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


def make_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over the visible GPUs, the default (one-device) strategy without."""
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def encoder_inputs(config, batch):
    """The K few-shot frames, with their landmark images when the encoders take them."""
    if config.concat_conditional_inputs_to_encoder:
        return tf.concat([batch[F.FRAMES_KEY], batch[F.CONTOURS_KEY]], axis=-1)
    return batch[F.FRAMES_KEY]


def forward(model, batch, training, latents=None):
    """`model.process` on a provider batch; `latents` (z_style, z_layout) of one example,
    when given, replace the encoders and are shared by the whole batch."""
    if latents is None:
        return model.process(encoder_inputs(model.config, batch), batch[F.TARGET_CONTOUR_KEY], training=training)
    size = tf.shape(batch[F.TARGET_CONTOUR_KEY])[0]
    tiled = tuple(None if z is None else tf.repeat(z, size, axis=0) for z in latents)
    return model.process(None, batch[F.TARGET_CONTOUR_KEY], training=training, precomputed_latents=tiled)


def public_outputs(outputs) -> dict:
    """The outputs run modes use (tf.function and strategy.run results cannot hold None), images
    as float32 (a reduced `precision_policy` computes them in bfloat16 or float16)."""
    return {
        key: tf.cast(outputs[key], tf.float32) if outputs[key].dtype.is_floating else outputs[key]
        for key in ("output", "segmap_label_map")
        if outputs[key] is not None
    }


def variables_to_train(model, finetuning: bool) -> dict:
    """{optimizer name: (loss key, variables)} as the original's train steps pick them.

    Meta-training updates every generator and encoder; subject fine-tuning (run_mode=infer)
    only the networks its --finetune_* flags name.
    """
    config, nets = model.config, model.get_networks()
    if config.model_type == "pretrain_layout":
        return {"g_layout_optimizer": ("loss_g", model.trainable_variables_by_optimizer()["g_layout_optimizer"])}
    if not finetuning:
        plan = {
            name: ("loss_g" if name == "g_optimizer" else "loss_d", variables)
            for name, variables in model.trainable_variables_by_optimizer().items()
        }
        if "g_layout_optimizer" in plan:
            plan["g_layout_optimizer"] = ("loss_g_segmentation", plan["g_layout_optimizer"][1])
        return plan
    layout_encoder = nets.get("layout_encoder", nets["encoder"])
    g_nets = [
        net
        for flag, net in (
            (config.finetune_g, nets["generator"]),
            (config.finetune_g_layout, nets["layout_generator"]),
            (config.finetune_e, nets["encoder"]),
            (config.finetune_e_layout, nets.get("layout_encoder")),
        )
        if flag and net is not None
    ]
    plan = {"g_optimizer": ("loss_g", g_nets)}
    if model.g_layout_optimizer is not None:
        plan["g_layout_optimizer"] = (
            "loss_g_segmentation",
            [
                net
                for flag, net in (
                    (config.finetune_g_layout, nets["layout_generator"]),
                    (config.finetune_e_layout, layout_encoder),
                )
                if flag
            ],
        )
    if model.d_optimizer is not None and config.finetune_d:
        plan["d_optimizer"] = ("loss_d", [nets["discriminator"]])
    return {name: (key, [v for net in group for v in net.trainable_variables]) for name, (key, group) in plan.items()}


def make_train_step(model, model_losses, strategy, global_batch_size, plan, latents=None):
    """A tf.function running one distributed step (one forward pass, one persistent tape,
    gradients clipped element-wise); returns (summed losses, replica-0 outputs).

    `step(batch, train_g=True, train_d=True)`: the flags pick which optimisers step, as the
    original's `train_g_step` / `train_d_step` (Python booleans: one graph per combination).
    """
    optimizers = model.get_optimizers()
    clip = model.config.grad_clip_abs_val

    def replica_step(batch, train_g, train_d):
        with tf.GradientTape(persistent=True) as tape:
            outputs = forward(model, batch, training=True, latents=latents)
            loss = model_losses.compute_losses(
                model, outputs, batch, training=True, global_batch_size=global_batch_size
            )
        for name, (key, variables) in plan.items():
            if not variables or not (train_d if name == "d_optimizer" else train_g):
                continue
            grads = tape.gradient(loss[key], variables)
            pairs = [
                (tf.clip_by_value(g, -clip, clip) if clip > 0 else g, v)
                for g, v in zip(grads, variables)
                if g is not None
            ]
            optimizers[name].apply_gradients(pairs)
        del tape
        return loss, public_outputs(outputs)

    @tf.function
    def step(batch, train_g=True, train_d=True):
        loss, outputs = strategy.run(replica_step, args=(batch, train_g, train_d))
        summed = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in loss.items()}
        return summed, {k: strategy.experimental_local_results(v)[0] for k, v in outputs.items()}

    return step


def output_images(output) -> np.ndarray:
    """Generated images [..., H, W, 3] in [-1, 1] (clipped) -> uint8, the io tuples' 4th panel."""
    return to_uint8(output, MODEL_RANGE)


def io_tuples(batch, output, label_map) -> np.ndarray:
    """[B, H, 5W, 3] uint8: input landmarks | predicted layout | oracle layout |
    clip(output) | ground truth."""
    panels = [
        to_uint8(batch[F.TARGET_CONTOUR_KEY], MODEL_RANGE),
        colorize(label_map, "lsr"),
        colorize(batch[F.TARGET_SEGMAP_KEY], "lsr"),
    ]
    if output is not None:  # layout pre-training without --multi_task_training has no RGB
        panels += [output_images(output), to_uint8(batch[F.TARGET_FRAME_KEY], MODEL_RANGE)]
    return np.concatenate(panels, axis=2)


def basenames(batch) -> list[str]:
    """`<person>-<video>-<part>` of each example, the prefix of its io-tuple file."""
    ids = zip(*(np.asarray(batch[key]) for key in (F.PERSON_ID_KEY, F.VIDEO_ID_KEY, F.VIDEO_PART_ID_KEY)))
    return ["-".join(x.decode() for x in example) for example in ids]


def write_summaries(step, optimizers, losses, batch, outputs):
    """Learning rates, losses, the io tuple, few-shot inputs + target and example names."""
    for name, optimizer in optimizers.items():
        lr = optimizer.learning_rate
        tf.summary.scalar(f"learning_rate/{name}", lr() if callable(lr) else lr, step=step)
    for key, value in losses.items():
        tf.summary.scalar(f"losses/{key}", value, step=step)
    tuples = io_tuples(batch, outputs.get("output"), outputs["segmap_label_map"])
    tf.summary.image("io_tuple", tuples, step=step)
    if F.FRAMES_KEY in batch and len(batch[F.FRAMES_KEY].shape) == 5:
        shots = tf.unstack(batch[F.FRAMES_KEY][:, :5], axis=1) + [batch[F.TARGET_FRAME_KEY]]
        tf.summary.image("few_shot_inputs_and_target", to_uint8(tf.concat(shots, axis=2), MODEL_RANGE), step=step)
    tf.summary.text("basename", tf.constant(basenames(batch)), step=step)


def denormalize(image) -> tf.Tensor:
    """Model-range image -> float32 on [0, 255], values outside [-1, 1] clipped first."""
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    return (tf.clip_by_value(image, -1.0, 1.0) + 1.0) * 127.5


class EvalMetrics:
    """Running means of the original's eval metrics (images on [0, 255]) and losses."""

    def __init__(self):
        self.values = {}

    def update(self, real, fake, per_example_losses):
        # As the original's denormalisation: both images are clipped to [-1, 1] before being
        # mapped to [0, 255] (the generator has no output non-linearity).
        real, fake = (denormalize(x) for x in (real, fake))
        self._add("mean_absolute_error", tf.reduce_mean(tf.abs(real - fake), axis=[1, 2, 3]))
        self._add("mean_psnr", tf.image.psnr(real, fake, 255))
        self._add("mean_ssim", tf.image.ssim(real, fake, 255))
        for key, value in per_example_losses.items():
            self._add(f"losses/{key}", value)

    def _add(self, key, values):
        self.values.setdefault(key, []).extend(np.atleast_1d(np.asarray(values)).tolist())

    def summary(self) -> str:
        lines = ["Evaluation metrics summary:", "---------------------------"]
        lines += [f"eval_metrics/{key} = {np.mean(v):.4f}" for key, v in self.values.items()]
        return "\n".join(lines)
