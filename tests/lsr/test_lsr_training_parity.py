"""One training step (losses, clipped gradients, variable updates) equals the original code's.

data/original_training_step.npz was recorded by running the original `MoustafaMeshry/lsr`
(commit a9a6643968a7b6b29cab3b53b73ab80d14fb32b7) in a scratch folder with this repository's
venv (TensorFlow 2.15.1, Keras 2.15, tensorflow-addons 0.23, CPU). Patches to that scratch copy:

1. `layers.Conv2DScaled.call`: the fact sheet's patch (the private Keras conv-op attributes
   replaced by `self.convolution_op(inputs, self.kernel * self.runtime_coeff)`, then bias and
   activation as before).
2. `losses/vgg_face_loss.py`: the widths of `VGGFaceModel` shrunk with sed (64, 128 -> 4;
   256, 512 -> 8; 4096 -> 16; 2622 -> 10), i.e. `TINY_VGGFACE` below. Layer list, indices
   1, 6, 11, 18, 25 and -3, preprocessing and loss code are untouched. fc6 is a 7x7 valid
   convolution over pool5 in both codes, so VGG-Face needs 224x224 images: hence
   `train_resolution=224` (the other options are `small_options`).
3. At run time, `tf.keras.applications.VGG19` was wrapped to build with `weights=None` (the
   original asks for the ImageNet download); its layers and the VGG-Face layers then got
   `vgg_value(...)` (He-scaled RandomState weights keyed by layer name), as here, where our
   VGG19 reads them from an .h5 file.

Recording script (outside the repository): `from options import FLAGS; FLAGS([...OPTIONS as
--flags])`; `TwoStepSynthesisModel(FLAGS)`, `init_extra_train_and_eval_networks()`, one
forward pass and one discriminator call to build the variables; every network variable set to
`keyed_value(<its checkpoint key>)` by restoring a checkpoint of them (as test_lsr_parity.py);
`create_optimizers(*LR_SCHEDULE)` with `tf.compat.v1.train.get_or_create_global_step()`
assigned `GLOBAL_STEP` (past the 500-step warm-up: at step 0 the learning rate is 2e-14 and
nothing moves); `model.train(make_inputs(), global_batch_size=2)` -- the original's own step:
one forward pass under one persistent tape, its `compute_losses` (all 12 terms at the default
weights, R1/R2 through the same tape), then the G update (Adam_opt_G over both generators and
encoders, gradients clipped to +-1) and the D update (Adam_opt_D), as `train()` alternates
them by default (`alternate_G_D_training=False`: both steps from the same forward pass). The
clipped gradients were captured by wrapping each optimizer's `apply_gradients`, the unclipped
ones (`unclipped/<key>`) by replacing `models.model_utils.get_train_op` with a same-behaving
function that also keeps `tape.gradient(...)` before its clip; the deltas are the variables
after minus before. The step has no randomness (no VAE noise, no dropout,
no augmentation; `parse_inputs` takes frames in order), so matching the inputs is enough.
Inputs are `make_inputs()`: RandomState(2022) frames, landmark drawings and label maps, K=2,
batch 2.

Tolerances: the losses are whole-network forward values, so `numerics.FORWARD`; the gradients
are compared unclipped, relative to their own largest magnitude (the clip saturates most
elements of some tensors, so the clipped ones hide both real differences and the scale of the
computation), see `GRADIENT_G`; ours must equal its unclipped gradient clipped to +-1 exactly;
the deltas are Adam's first step, lr·g/(|g| + 3.2e-6), see `delta_tolerance` and `DECISIVE`.
`test_a_perturbed_kernel_fails` checks that a 1% change of one kernel fails the comparison.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from numerics import FORWARD, mismatch

GOLDEN = Path(__file__).parent / "data" / "original_training_step.npz"
RESOLUTION = 224
BATCH, K = 2, 2
GLOBAL_STEP = 1000
# (lr_warmstart_steps, decay_start_step, decay_end_step, decay_num_intervals, starting_step)
LR_SCHEDULE = (500, 10**6, 2 * 10**6, 100, 0)
TINY_VGGFACE_WIDTHS, TINY_VGGFACE_FC, TINY_VGGFACE_CLASSES = (4, 4, 8, 8, 8), 16, 10
LOSS_KEYS = (
    "loss_d_real",
    "loss_d_fake",
    "real_gp",
    "fake_gp",
    "loss_d",
    "loss_g_gan",
    "loss_g_vgg",
    "loss_g_l1",
    "loss_z_l2",
    "loss_z_layout_l2",
    "loss_g_vgg_face_recon_and_id",
    "loss_g",
)
# A few variables of each network (checkpoint keys, without the '/.ATTRIBUTES/...' suffix).
VARIABLES = (
    "encoder/blocks/0/kernel",
    "encoder/fc_z/bias",
    "layout_encoder/blocks/0/kernel",
    "layout_encoder/fc_z/bias",
    "layout_generator/decoder_blocks/0/resblock_up_fn/norm0/dense/bias",
    "layout_generator/output_conv/kernel",
    "generator/blocks/2/conv_block0/spade_norm/gamma_conv/kernel",
    "generator/to_rgb/kernel",
    "discriminator/discriminators/0/blocks/0/kernel",
    "discriminator/discriminators/1/compute_logits/layer_with_weights-0/kernel",
)


def make_inputs() -> dict[str, np.ndarray]:
    """The training batch, in the original provider's keys (int label maps [B(, K), H, W])."""
    rng = np.random.RandomState(2022)
    shots, target = (BATCH, K, RESOLUTION, RESOLUTION), (BATCH, RESOLUTION, RESOLUTION)
    return {
        "frames_in": rng.uniform(-1, 1, (*shots, 3)).astype(np.float32),
        "contours_in": rng.uniform(-1, 1, (*shots, 3)).astype(np.float32),
        "segmaps_in": rng.randint(0, 19, shots).astype(np.int32),
        "frame_gt": rng.uniform(-1, 1, (*target, 3)).astype(np.float32),
        "contour_gt": rng.uniform(-1, 1, (*target, 3)).astype(np.float32),
        "segmap_gt": rng.randint(0, 19, target).astype(np.int32),
    }


def vgg_value(name: str, shape) -> np.ndarray:
    """He-scaled N(0, 2/fan_in) kernels, N(0, 0.1) biases, keyed by `name`."""
    rng = np.random.RandomState(zlib.crc32(name.encode()))
    std = np.sqrt(2.0 / np.prod(shape[:-1])) if len(shape) > 1 else 0.1
    return (rng.normal(0.0, 1.0, shape) * std).astype(np.float32)


def set_vgg_weights(layers, prefix: str) -> None:
    """Give every weighted layer `vgg_value('<prefix>/<i>/<kernel|bias>')`, i counting weighted layers."""
    weighted = [layer for layer in layers if layer.weights]
    for i, layer in enumerate(weighted):
        layer.set_weights([vgg_value(f"{prefix}/{i}/{w.name.split('/')[-1]}", w.shape) for w in layer.weights])


def resolve(root, key: str):
    """The variable a checkpoint key names, found by walking attributes and list indices."""
    node = root
    for part in key.split("/"):
        if isinstance(node, dict):
            node = node[part]
        elif part.isdigit():
            node = node[int(part)]
        elif part.startswith("layer_with_weights-"):
            node = [layer for layer in node.layers if layer.weights][int(part.split("-")[1])]
        else:
            node = getattr(node, part)
    return node


def clip_input(grad):
    """The tensor that `tf.clip_by_value` clipped into `grad` (graph mode): the gradient before the clip.

    `tf.clip_by_value(t, lo, hi)` is `maximum(minimum(t, hi), lo)`; the step's clip is found by
    that structure, so that the unclipped gradient is the very tensor the step computed.
    """
    ops = (grad.op.type, grad.op.inputs[0].op.type)
    assert ops == ("Maximum", "Minimum"), f"the captured gradient is not a tf.clip_by_value output: {ops}"
    return grad.op.inputs[0].op.inputs[0]


PERTURBED = "generator/to_rgb/kernel"  # the last convolution: moves every G loss and gradient


class OurStep:
    """Our model, losses and tf.function training step, built once for the recorded weights.

    `run(perturb)` resets every variable and optimizer state, scales `PERTURBED` by `perturb`,
    and runs one step: {'loss/<key>', 'grad/<var>', 'delta/<var>'} (the trace is reused).
    """

    def __init__(self, build_model, small_options, keyed_value, write_checkpoint, folder: Path):
        import tensorflow as tf

        from common.vgg.layouts import VGGFACE, VGGArch
        from lsr import checkpoint, engine
        from lsr.losses import ModelLosses

        vgg19 = tf.keras.applications.VGG19(include_top=False, weights=None)
        set_vgg_weights(vgg19.layers, "vgg19")
        vgg19_path = folder / "vgg19_notop.h5"
        vgg19.save_weights(str(vgg19_path))

        model = build_model(**dict(small_options, train_resolution=RESOLUTION, vgg19_weights_path=str(vgg19_path)))
        suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
        keys = checkpoint.checkpoint_keys(checkpoint.build_checkpoint(model, "eval"))
        self.values = {k[: -len(suffix)]: keyed_value(k[: -len(suffix)], tuple(s.shape)) for k, s in keys.items()}
        checkpoint.load_model(model, write_checkpoint(folder / "ckpt-1", self.values), "eval")

        arch = VGGArch(
            "tiny_vggface",
            VGGFACE.blocks,
            TINY_VGGFACE_CLASSES,
            VGGFACE.mean_bgr,
            "random weights",
            widths=TINY_VGGFACE_WIDTHS,
            fc_width=TINY_VGGFACE_FC,
        )
        model_losses = ModelLosses(model.config, vgg_face_arch=arch)
        face = model_losses.vgg_face_loss.model
        face.build((None, RESOLUTION, RESOLUTION, 3))
        set_vgg_weights(face.net_layers, "vggface")

        global_step = tf.Variable(GLOBAL_STEP, dtype=tf.int64, trainable=False)
        model.create_optimizers(global_step, *LR_SCHEDULE[:4], starting_step=LR_SCHEDULE[4])
        self.networks = model.get_networks()
        self.tracked = {key: resolve(self.networks, key) for key in VARIABLES}
        self.captured = {
            v.ref(): [tf.Variable(tf.zeros_like(v), trainable=False) for _ in ("clipped", "unclipped")]
            for v in self.tracked.values()
        }
        self.optimizers = list(model.get_optimizers().values())
        for optimizer in self.optimizers:
            optimizer.apply_gradients = self._capturing(optimizer.apply_gradients)
        plan = engine.variables_to_train(model, finetuning=False)
        self.step = engine.make_train_step(model, model_losses, tf.distribute.get_strategy(), BATCH, plan)
        self.batch = {k: tf.constant(v) for k, v in make_inputs().items()}
        self.all_variables = {key: resolve(self.networks, key) for key in self.values}

    def _capturing(self, apply):
        def apply_gradients(pairs, **kwargs):
            pairs = list(pairs)
            for grad, var in pairs:
                if var.ref() in self.captured:
                    clipped, unclipped = self.captured[var.ref()]
                    clipped.assign(grad)
                    unclipped.assign(clip_input(grad))
            return apply(pairs, **kwargs)

        return apply_gradients

    def run(self, perturb: float = 1.0) -> dict[str, np.ndarray]:
        for key, var in self.all_variables.items():
            var.assign(self.values[key] * np.float32(perturb if key == PERTURBED else 1.0))
        for optimizer in self.optimizers:  # a fresh Adam: iteration 0, zero slots
            for var in optimizer.variables():
                var.assign(np.zeros(var.shape, var.dtype.as_numpy_dtype))
        before = {key: v.numpy() for key, v in self.tracked.items()}
        losses, _ = self.step(self.batch)
        out = {f"loss/{k}": np.asarray(losses[k]) for k in LOSS_KEYS}
        for key, var in self.tracked.items():
            out[f"grad/{key}"], out[f"unclipped/{key}"] = (v.numpy() for v in self.captured[var.ref()])
            out[f"delta/{key}"] = var.numpy() - before[key]
        return out


# Gradients are compared before the clip (the clip is checked exactly, see `_problems`), as
# fractions of the largest unclipped gradient. Measured: the original's own gradients move
# between kernel paths (oneDNN on vs TF_ENABLE_ONEDNN_OPTS=0) by up to 2.7e-3 of that scale for
# G's variables (1e-3..2.7e-3 wherever the backward pass crosses G's normalisation layers; not
# near the clip value, and the same whether or not an element is clipped), and by up to 9.3e-5
# for D's, whose gradients do not go back through G, VGG19 or VGG-Face; ours and the original
# agree within 1.3e-6 on any one kernel path. G's tolerance is 1e-2, nearly four times the
# original's own spread, because other CPUs may spread further; a 1% change of one kernel still
# moves G's unclipped gradients by >= 7e-2 (3.4e-2 for the perturbed kernel's own) and D's by
# >= 1.4e-2. The losses (FORWARD) and D's gradients carry the strict part of the comparison.
GRADIENT_G = 1e-2
GRADIENT_D = 5e-4
CLIP = 1.0  # the default grad_clip_abs_val
# Adam's first step (beta1=0) moves an element by lr·g/(|g| + 1e-7/sqrt(1 - 0.999)): a gradient
# whose sign rounding can flip moves by 2·lr, so deltas are compared where the unclipped
# gradient is at least ten gradient tolerances from 0 (or exactly 0: it must not move at all).
DECISIVE = 10


def gradient_tolerance(key: str) -> float:
    return GRADIENT_D if key.startswith("discriminator/") else GRADIENT_G


def delta_tolerance(expected_delta, before) -> float:
    """FORWARD, plus two ulps of the variable: a delta is (after - before) of float32 values."""
    scale = max(float(np.abs(expected_delta).max()), 1e-30)
    return FORWARD + 2 * float(np.spacing(np.abs(before).max().astype(np.float32))) / scale


@pytest.fixture(scope="module")
def our_step(build_model, small_options, keyed_value, write_checkpoint, tmp_path_factory):
    return OurStep(build_model, small_options, keyed_value, write_checkpoint, tmp_path_factory.mktemp("step"))


def _problems(ours, golden, values) -> list[str]:
    found = []
    for name in LOSS_KEYS:
        problem = mismatch(ours[f"loss/{name}"], golden[f"loss/{name}"], FORWARD)
        found += [f"loss {name}: {problem}"] if problem else []
    for key in VARIABLES:
        raw, tol = golden[f"unclipped/{key}"], gradient_tolerance(key)
        problem = mismatch(ours[f"unclipped/{key}"], raw, tol)
        found += [f"grad {key}: {problem}"] if problem else []
        if not np.array_equal(ours[f"grad/{key}"], np.clip(ours[f"unclipped/{key}"], -CLIP, CLIP)):
            found.append(f"clip {key}: the applied gradient is not the unclipped one clipped to +-{CLIP}")
        kept = (np.abs(raw) >= DECISIVE * tol * np.abs(raw).max()) | (raw == 0)
        expected = golden[f"delta/{key}"]
        rel = delta_tolerance(expected, values[key])
        problem = mismatch(np.where(kept, ours[f"delta/{key}"], 0), np.where(kept, expected, 0), rel)
        found += [f"delta {key}: {problem}"] if problem else []
    return found


def test_training_step_equals_the_original(our_step):
    golden = np.load(GOLDEN)
    assert sorted(golden.files) == sorted(
        [f"loss/{k}" for k in LOSS_KEYS] + [f"{q}/{k}" for q in ("grad", "unclipped", "delta") for k in VARIABLES]
    )
    for key in VARIABLES:  # a real update, not an all-zero one, from the recorded gradient
        assert np.abs(golden[f"delta/{key}"]).max() > 5e-4, key
        assert np.array_equal(golden[f"grad/{key}"], np.clip(golden[f"unclipped/{key}"], -CLIP, CLIP)), key
    assert _problems(our_step.run(), golden, our_step.values) == []


def test_a_perturbed_kernel_fails(our_step):
    golden = np.load(GOLDEN)
    problems = _problems(our_step.run(perturb=1.01), golden, our_step.values)
    # Every G loss and every gradient moves, by at least 3.4 tolerances (the perturbed kernel's
    # own gradient; the others >= 7, the losses >= 17). loss_d is not counted on: it moves by
    # 7.2e-5 of itself, only 1.4 times FORWARD (D's real half does not see G); its fake-image
    # R2 term, fake_gp, moves by 8.8e-4 instead.
    for name in ("loss_g", "loss_g_gan", "loss_g_vgg", "loss_g_l1", "loss_g_vgg_face_recon_and_id", "fake_gp"):
        assert any(p.startswith(f"loss {name}:") for p in problems), name
    for key in VARIABLES:
        assert any(p.startswith(f"grad {key}:") for p in problems), key
